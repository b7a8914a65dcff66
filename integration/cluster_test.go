//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
)

// A plan whose step names another cluster than the worker's is denied before
// anything is read or written there, and the steps before it are undone.
func TestStepOfAnotherClusterIsDenied(t *testing.T) {
	w := startWorker(t, "testdata/allow-all", func(c *workers.Config) { c.Cluster = "it-cluster" })
	ns := namespace(t)
	deployment(t, ns, "web", 2, "registry.example/web:v1")
	elsewhere := step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(5))
	elsewhere.Target.Cluster = "prod-us-1"
	here := step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(3))
	here.Target.Cluster = "it-cluster"
	st := w.run(t, plan("staging", here, elsewhere))
	wantState(t, st, remediation.StateDenied)
	if !strings.Contains(st.Reason, `target.cluster is "prod-us-1", but this worker acts on cluster "it-cluster"`) {
		t.Errorf("reason %q", st.Reason)
	}
	if st.Steps[0].State != remediation.StepCompensated {
		t.Errorf("step 0 (this cluster) is %s, want done then undone", st.Steps[0].State)
	}
	if n := *getDeployment(t, ns, "web").Spec.Replicas; n != 2 {
		t.Errorf("web has %d replicas, want 2: step 0 undone, step 1 never run", n)
	}
}
