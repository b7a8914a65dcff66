//go:build integration

package integration

import (
	"context"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/remediation"
)

// failing is a step that policy allows but that fails when it acts (the
// Deployment has no such container: Invalid, not retried), so that the steps
// before it are compensated.
func failing(ns, deployment string) remediation.Step {
	return step(remediation.ActionSetImage, remediation.KindDeployment, ns, deployment, remediation.Params{Container: "no-such-container", Image: "registry.example/x:v1"})
}

// spec is the part of a Deployment a remediation may change.
type spec struct {
	Replicas    int32
	Images      []string
	RestartedAt string
}

func specOf(d *appsv1.Deployment) spec {
	s := spec{Replicas: *d.Spec.Replicas, RestartedAt: d.Spec.Template.Annotations[remediation.RestartedAtAnnotation]}
	for _, c := range d.Spec.Template.Spec.Containers {
		s.Images = append(s.Images, c.Image)
	}
	return s
}

func TestDeploymentActionsAndCompensations(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ns := namespace(t)
	deployment(t, ns, "web", 2, "registry.example/web:v1")

	cases := []struct {
		name   string
		step   remediation.Step
		change func(before, after spec) bool
	}{
		{"scale", step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(4)),
			func(_, after spec) bool { return after.Replicas == 4 }},
		{"set-image", step(remediation.ActionSetImage, remediation.KindDeployment, ns, "web", remediation.Params{Container: "app", Image: "registry.example/web:v2"}),
			func(_, after spec) bool { return after.Images[0] == "registry.example/web:v2" }},
		{"rollout-restart", step(remediation.ActionRolloutRestart, remediation.KindDeployment, ns, "web", remediation.Params{}),
			func(before, after spec) bool {
				return after.RestartedAt != "" && after.RestartedAt != before.RestartedAt
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := specOf(getDeployment(t, ns, "web"))
			st := w.run(t, plan("staging", c.step))
			wantState(t, st, remediation.StateCompleted)
			d := getDeployment(t, ns, "web")
			after := specOf(d)
			if !c.change(before, after) {
				t.Fatalf("%s did not change the Deployment: before %+v after %+v", c.name, before, after)
			}
			if d.Annotations[remediation.AnnotationRemediation] != st.ID || d.Annotations[remediation.AnnotationRequester] != "agent:sre-agent" {
				t.Errorf("annotations %v", d.Annotations)
			}
			if d.Status.AvailableReplicas != *d.Spec.Replicas || d.Status.UpdatedReplicas != *d.Spec.Replicas {
				t.Errorf("verified, but rollout incomplete: %+v", d.Status)
			}
			events, err := stack.kc.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range events.Items {
				found = found || (e.Reason == "ReinsRemediation" && e.InvolvedObject.Name == "web" && e.Annotations[remediation.AnnotationRemediation] == st.ID)
			}
			if !found {
				t.Error("no ReinsRemediation event on the Deployment")
			}

			// The same action again, then a failing step: the action is undone.
			again := c.step
			switch c.name {
			case "scale":
				again.Params = replicas(1)
			case "set-image":
				again.Params.Image = "registry.example/web:v3"
			}
			rb := w.run(t, plan("staging", again, failing(ns, "web")))
			wantState(t, rb, remediation.StateRolledBack)
			if rb.Steps[0].State != remediation.StepCompensated {
				t.Errorf("step 0 state %s, want compensated", rb.Steps[0].State)
			}
			if got := specOf(getDeployment(t, ns, "web")); !reflect.DeepEqual(got, after) {
				t.Errorf("after compensation %+v, want %+v", got, after)
			}
		})
	}
}

func TestNodeCordonAndCompensation(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ctx := context.Background()
	name := unique("it-node")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}}}
	if _, err := stack.kc.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stack.kc.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) })
	unschedulable := func() bool {
		n, err := stack.kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Spec.Unschedulable
	}
	cordon := step(remediation.ActionCordon, remediation.KindNode, "", name, remediation.Params{})
	uncordon := step(remediation.ActionUncordon, remediation.KindNode, "", name, remediation.Params{})
	ns := namespace(t)
	deployment(t, ns, "web", 1, "registry.example/web:v1")

	wantState(t, w.run(t, plan("staging", cordon, failing(ns, "web"))), remediation.StateRolledBack)
	if unschedulable() {
		t.Fatal("compensated cordon left the node unschedulable")
	}
	wantState(t, w.run(t, plan("staging", cordon)), remediation.StateCompleted)
	if !unschedulable() {
		t.Fatal("cordon did not make the node unschedulable")
	}
	wantState(t, w.run(t, plan("staging", uncordon, failing(ns, "web"))), remediation.StateRolledBack)
	if !unschedulable() {
		t.Fatal("compensated uncordon left the node schedulable")
	}
	wantState(t, w.run(t, plan("staging", uncordon)), remediation.StateCompleted)
	if unschedulable() {
		t.Fatal("uncordon did not make the node schedulable")
	}
}

func TestPodQuarantineDeleteAndCompensation(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ctx := context.Background()
	ns := namespace(t)
	deployment(t, ns, "api", 2, "registry.example/api:v1")
	pods, err := stack.kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods: %v %d", err, len(pods.Items))
	}
	a, b := pods.Items[0], pods.Items[1]
	policyOf := func(pod string) error {
		_, err := stack.kc.NetworkingV1().NetworkPolicies(ns).Get(ctx, "reins-quarantine-"+pod, metav1.GetOptions{})
		return err
	}
	labelOf := func(pod string) string {
		p, err := stack.kc.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Labels[remediation.QuarantineLabel]
	}

	// Quarantine a, then undo a quarantine of b.
	wantState(t, w.run(t, plan("staging", step(remediation.ActionQuarantinePod, remediation.KindPod, ns, a.Name, remediation.Params{}))), remediation.StateCompleted)
	if labelOf(a.Name) != string(a.UID) || policyOf(a.Name) != nil {
		t.Fatalf("pod %s: label %q, NetworkPolicy %v", a.Name, labelOf(a.Name), policyOf(a.Name))
	}
	np, err := stack.kc.NetworkingV1().NetworkPolicies(ns).Get(ctx, "reins-quarantine-"+a.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 || len(np.Spec.PolicyTypes) != 2 || np.Spec.PodSelector.MatchLabels[remediation.QuarantineLabel] != string(a.UID) {
		t.Errorf("quarantine policy is not deny-all for exactly the pod: %+v", np.Spec)
	}
	wantState(t, w.run(t, plan("staging", step(remediation.ActionQuarantinePod, remediation.KindPod, ns, b.Name, remediation.Params{}), failing(ns, "api"))), remediation.StateRolledBack)
	if labelOf(b.Name) != "" || !isNotFound(policyOf(b.Name)) {
		t.Errorf("compensated quarantine of %s left label %q / policy %v", b.Name, labelOf(b.Name), policyOf(b.Name))
	}

	// Delete b: irreversible, so a later failure leaves it deleted.
	del := w.run(t, plan("staging", step(remediation.ActionDeletePod, remediation.KindPod, ns, b.Name, remediation.Params{}), failing(ns, "api")))
	wantState(t, del, remediation.StateRolledBack)
	if del.Steps[0].State != remediation.StepNotCompensated || !del.Steps[0].Irreversible {
		t.Errorf("delete step: %+v", del.Steps[0])
	}
	waitFor(t, "pod "+b.Name+" gone", func() (bool, error) {
		p, err := stack.kc.CoreV1().Pods(ns).Get(ctx, b.Name, metav1.GetOptions{})
		if isNotFound(err) {
			return true, nil
		}
		return err == nil && p.UID != b.UID, err
	})
}

func TestDryRunChangesNothing(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ns := namespace(t)
	before := deployment(t, ns, "cart", 2, "registry.example/cart:v1")
	p := plan("staging",
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "cart", remediation.Params{Container: "app", Image: "registry.example/cart:v9"}),
		step(remediation.ActionScale, remediation.KindDeployment, ns, "cart", replicas(5)),
		step(remediation.ActionRolloutRestart, remediation.KindDeployment, ns, "cart", remediation.Params{}))
	p.DryRun = true
	st := w.run(t, p)
	wantState(t, st, remediation.StateCompleted)
	after := getDeployment(t, ns, "cart")
	if after.Generation != before.Generation || after.ResourceVersion != before.ResourceVersion || !reflect.DeepEqual(specOf(after), specOf(before)) {
		t.Errorf("dry run changed the Deployment: generation %d→%d, rv %s→%s", before.Generation, after.Generation, before.ResourceVersion, after.ResourceVersion)
	}
	events, err := stack.kc.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=ReinsRemediation"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 0 {
		t.Errorf("dry run recorded %d events", len(events.Items))
	}
}

// A plan whose third step fails leaves every object as it was before the first.
func TestThirdStepFailureRestoresEverything(t *testing.T) {
	w := startWorker(t, "testdata/allow-all")
	ns := namespace(t)
	deployment(t, ns, "front", 2, "registry.example/front:v1")
	deployment(t, ns, "back", 3, "registry.example/back:v1")
	before := map[string]spec{"front": specOf(getDeployment(t, ns, "front")), "back": specOf(getDeployment(t, ns, "back"))}
	st := w.run(t, plan("staging",
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "front", remediation.Params{Container: "app", Image: "registry.example/front:v2"}),
		step(remediation.ActionScale, remediation.KindDeployment, ns, "back", replicas(5)),
		failing(ns, "front"),
	))
	wantState(t, st, remediation.StateRolledBack)
	for name, want := range before {
		if got := specOf(getDeployment(t, ns, name)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v after rollback, want %+v", name, got, want)
		}
		if err := devstack.WaitRollout(context.Background(), stack.kc, ns, name, time.Minute); err != nil {
			t.Error(err)
		}
	}
	for i, want := range []remediation.StepState{remediation.StepCompensated, remediation.StepCompensated, remediation.StepCompensated} {
		if st.Steps[i].State != want {
			t.Errorf("step %d: %s, want %s", i, st.Steps[i].State, want)
		}
	}
}
