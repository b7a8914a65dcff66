package devstack

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Sample workload: the shop/checkout Deployment the demo remediation fixes.
const (
	SampleNamespace = "shop"
	SampleName      = "checkout"
	SampleContainer = "app"
	SampleGoodImage = "registry.example/checkout:v2.3.0"
	SampleBadImage  = "registry.example/checkout:v2.3.1"
)

// CreateSample creates namespace shop (environment production) and Deployment checkout with 3
// replicas, rolled out first with SampleGoodImage and then SampleBadImage, so
// that it has a rollout history to roll back to. It returns once the second
// rollout completed.
func CreateSample(ctx context.Context, c kubernetes.Interface) error {
	// The demo plan's environment: its Vault role mints credentials only for
	// namespaces labelled so.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SampleNamespace, Labels: map[string]string{EnvironmentLabel: "production"}}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", SampleNamespace, err)
	}
	replicas := int32(3)
	labels := map[string]string{"app": SampleName}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: SampleName, Namespace: SampleNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: SampleContainer, Image: SampleGoodImage}}},
			},
		},
	}
	deployments := c.AppsV1().Deployments(SampleNamespace)
	if _, err := deployments.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment %s/%s: %w", SampleNamespace, SampleName, err)
	}
	if err := WaitRollout(ctx, c, SampleNamespace, SampleName, 2*time.Minute); err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, SampleContainer, SampleBadImage)
	if _, err := deployments.Patch(ctx, SampleName, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("roll out %s: %w", SampleBadImage, err)
	}
	return WaitRollout(ctx, c, SampleNamespace, SampleName, 2*time.Minute)
}

// WaitRollout polls until the Deployment's rollout is complete: every replica
// updated and available, the latest generation observed.
func WaitRollout(ctx context.Context, c kubernetes.Interface, namespace, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := "not read yet"
	for {
		d, err := c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			s := d.Status
			if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want {
				return nil
			}
			last = fmt.Sprintf("%d/%d updated, %d available, %d total", s.UpdatedReplicas, want, s.AvailableReplicas, s.Replicas)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rollout of %s/%s did not complete within %s (%s)", namespace, name, timeout, last)
		case <-tick.C:
		}
	}
}
