package activities

import (
	"context"
	"strings"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/reins-dev/reins/remediation"
)

// A step whose target names another cluster than the worker's is denied by
// the policy activity and refused, before any read or write, by Observe,
// Execute and Compensate: the worker never acts on its own cluster for a
// plan meant for another.
func TestStepOfAnotherClusterIsRefused(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1"}}
	step := func(cluster string) remediation.StepRef {
		return remediation.StepRef{Remediation: "r1", Environment: "lab",
			Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Cluster: cluster, Kind: remediation.KindNode, Name: "n1"}}}
	}
	for _, c := range []struct {
		worker, target, want string
	}{
		{"prod-eu-1", "prod-us-1", `target.cluster is "prod-us-1", but this worker acts on cluster "prod-eu-1"`},
		{"", "prod-us-1", `this worker's cluster has no name: set cluster in its config`},
		{"prod-eu-1", "prod-eu-1", ""},
		{"prod-eu-1", "", ""},
	} {
		writer := fake.NewClientset(node.DeepCopy())
		src := &leaseSource{client: writer}
		k := &Kubernetes{Reader: fake.NewClientset(node.DeepCopy()), Writers: src, Cluster: c.worker}
		p := &Policy{Engine: &historyOf{}, Reader: k.Reader, Denials: staticDenials{}, Cluster: c.worker}
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		env.RegisterActivityWithOptions(p.Evaluate, activity.RegisterOptions{Name: remediation.ActivityEvaluatePolicy})
		env.RegisterActivityWithOptions(k.Observe, activity.RegisterOptions{Name: remediation.ActivityObserve})
		env.RegisterActivityWithOptions(k.Execute, activity.RegisterOptions{Name: remediation.ActivityExecute})
		env.RegisterActivityWithOptions(k.Compensate, activity.RegisterOptions{Name: remediation.ActivityCompensate})
		ref := step(c.target)
		plan := remediation.Plan{Requester: remediation.Requester{Kind: remediation.RequesterAgent, Name: "bot"}, Environment: "lab", Steps: []remediation.Step{ref.Step}}
		v, err := env.ExecuteActivity(remediation.ActivityEvaluatePolicy, remediation.PolicyInput{Remediation: "r1", Plan: plan, Index: 0})
		if err != nil {
			t.Fatal(err)
		}
		var decided remediation.PolicyResult
		if err := v.Get(&decided); err != nil {
			t.Fatal(err)
		}
		refused := c.want != ""
		if got := decided.Decision.Effect == remediation.EffectDeny && strings.Contains(strings.Join(decided.Decision.Reasons, " "), c.want); got != refused {
			t.Errorf("worker %q, target %q: decision %+v", c.worker, c.target, decided.Decision)
		}
		_, obsErr := env.ExecuteActivity(remediation.ActivityObserve, remediation.ObserveInput{Step: ref.Step})
		_, execErr := env.ExecuteActivity(remediation.ActivityExecute, remediation.ExecuteInput{StepRef: ref, Before: remediation.Snapshot{Exists: true, UID: "u1"}})
		_, undoErr := env.ExecuteActivity(remediation.ActivityCompensate, remediation.CompensateInput{StepRef: ref, Before: remediation.Snapshot{Exists: true, UID: "u1"}})
		for name, err := range map[string]error{"observe": obsErr, "execute": execErr, "compensate": undoErr} {
			if refused && !(isFinal(err, remediation.ErrInvalid) && strings.Contains(err.Error(), c.want)) {
				t.Errorf("worker %q, target %q: %s: %v, want a final refusal", c.worker, c.target, name, err)
			}
			if !refused && err != nil {
				t.Errorf("worker %q, target %q: %s: %v", c.worker, c.target, name, err)
			}
		}
		if got, _ := writer.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{}); refused && (got.Spec.Unschedulable || src.released() != 0) {
			t.Errorf("worker %q, target %q: the node was written (%v) or a credential minted (%d)", c.worker, c.target, got.Spec.Unschedulable, src.released())
		}
	}
}
