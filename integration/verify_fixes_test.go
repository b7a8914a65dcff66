//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/reins-dev/reins/remediation"
)

// stuckRollout starts a rollout of Deployment ns/name to template (merged
// into its pod spec) with a progress deadline of two seconds and a strategy
// that keeps every serving replica (maxSurge 1, maxUnavailable 0), then waits
// until the controller, having observed it, reports ProgressDeadlineExceeded.
func stuckRollout(t *testing.T, ns, name string, podSpec map[string]any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{
		"progressDeadlineSeconds": 2,
		"strategy":                map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxSurge": 1, "maxUnavailable": 0}},
		"template":                map[string]any{"spec": podSpec},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := stack.kc.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ProgressDeadlineExceeded on "+ns+"/"+name, func() (bool, error) {
		d, err := stack.kc.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration >= d.Generation && progressDeadlineExceededOf(d), nil
	})
}

func progressDeadlineExceededOf(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return true
		}
	}
	return false
}

// A rollout that cannot create its pods (the namespace's pod quota is used
// up) exceeds its progress deadline; the remediation rolls the image back.
// The controller finds the earlier ReplicaSet, and the rollback verifies:
// the ProgressDeadlineExceeded of the bad rollout does not fail it.
func TestVerifyRollbackAfterAStuckRollout(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ns := namespace(t)
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	ctx := context.Background()
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: ns},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}},
	}
	if _, err := stack.kc.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Admission enforces a quota only once its controller has counted the use.
	waitFor(t, "pod quota counted", func() (bool, error) {
		q, err := stack.kc.CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used, ok := q.Status.Used[corev1.ResourcePods]
		return ok && used.Value() == 2, nil
	})
	stuckRollout(t, ns, "checkout", map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.example/checkout:v2-bad"}}})

	rollback := step(remediation.ActionSetImage, remediation.KindDeployment, ns, "checkout",
		remediation.Params{Container: "app", Image: "registry.example/checkout:v1"})
	st := w.run(t, plan("staging", rollback))
	wantState(t, st, remediation.StateCompleted)
	d := getDeployment(t, ns, "checkout")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/checkout:v1" {
		t.Errorf("image %s after the rollback, want registry.example/checkout:v1", img)
	}
	if s := d.Status; s.ObservedGeneration < d.Generation || s.AvailableReplicas != 2 || s.UpdatedReplicas != 2 || progressDeadlineExceededOf(d) {
		t.Errorf("status after the rollback %+v (generation %d): want the rollback observed, 2 updated and available, no longer stuck", s, d.Generation)
	}
}

// During a rollout stuck on replicas that cannot be scheduled, "scale
// checkout to 4" gives the serving revision its share of the new count; the
// scale verifies (it is not failed by the rollout's ProgressDeadlineExceeded,
// nor waits for the stuck replicas) and is kept.
func TestVerifyScaleDuringAStuckRollout(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ns := namespace(t)
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	stuckRollout(t, ns, "checkout", map[string]any{
		"containers":   []any{map[string]any{"name": "app", "image": "registry.example/checkout:v2-bad"}},
		"nodeSelector": map[string]any{"reins.test/no-such-node": "true"},
	})

	st := w.run(t, plan("staging", step(remediation.ActionScale, remediation.KindDeployment, ns, "checkout", replicas(4))))
	wantState(t, st, remediation.StateCompleted)
	d := getDeployment(t, ns, "checkout")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 4 {
		t.Fatalf("spec.replicas %v after the scale, want 4 (kept)", d.Spec.Replicas)
	}
	s := d.Status
	if s.Replicas < 4 || s.AvailableReplicas < s.Replicas-s.UpdatedReplicas || s.UpdatedReplicas == s.Replicas {
		t.Errorf("status %+v: want at least 4 replicas, the serving revision's all available, the stuck revision's not", s)
	}
}
