//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reins-dev/reins/policies"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// With the built-in bundle: step 0 is allowed, step 1 denied (production
// workloads are never scaled to 0), so the remediation ends Denied with step
// 0 compensated, and the reasons and bundle digest are in the history.
func TestDefaultPolicyDenialCompensates(t *testing.T) {
	w := startWorker(t, "")
	ns := namespace(t)
	deployment(t, ns, "pay", 2, "registry.example/pay:v1")
	before := specOf(getDeployment(t, ns, "pay"))
	engine, err := policies.New(policies.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := plan("production",
		step(remediation.ActionScale, remediation.KindDeployment, ns, "pay", replicas(3)),
		step(remediation.ActionScale, remediation.KindDeployment, ns, "pay", replicas(0)))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	st := w.run(t, p)
	wantState(t, st, remediation.StateDenied)
	if st.Steps[0].State != remediation.StepCompensated || st.Steps[0].Decision.Effect != remediation.EffectAllow {
		t.Errorf("step 0: %s %+v", st.Steps[0].State, st.Steps[0].Decision)
	}
	d := st.Steps[1].Decision
	if d == nil || d.Effect != remediation.EffectDeny || d.Bundle != engine.Digest() || len(d.Reasons) == 0 {
		t.Fatalf("step 1 decision %+v, want deny by bundle %s", d, engine.Digest())
	}
	if got := specOf(getDeployment(t, ns, "pay")); got.Replicas != before.Replicas {
		t.Errorf("replicas %d after compensation, want %d", got.Replicas, before.Replicas)
	}
	text := payloadText(fetchHistory(t, st.ID))
	for _, want := range append([]string{engine.Digest()}, d.Reasons...) {
		if !strings.Contains(text, want) {
			t.Errorf("the history's payloads do not show %q", want)
		}
	}
}

// A production set-image needs one co-signer: an unsigned raw signal and the
// requester's own approval change nothing; a signed approval from the group
// lets the step run.
func TestCosignWithSignedApproval(t *testing.T) {
	w := startWorker(t, "")
	ns := "shop-" + unique("co")
	createNamespace(t, ns)
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	p := plan("production", step(remediation.ActionSetImage, remediation.KindDeployment, ns, "checkout", remediation.Params{Container: "app", Image: "registry.example/checkout:v2"}))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, st := w.startAwaiting(t, ctx, p, 0)
	var err error
	approval := remediation.Approval{
		Remediation: run.GetID(), Run: run.GetRunID(), StepDigest: st.Steps[0].Digest, Group: st.Steps[0].Decision.Group,
		Verdict: remediation.VerdictApprove, At: time.Now().UTC(),
	}
	unsigned := approval
	unsigned.Approver = remediation.Approver{ID: "mallory", Source: "cli"}
	self := approval
	self.Approver = remediation.Approver{ID: "alice", Source: "cli"}
	good := approval
	good.Approver = remediation.Approver{ID: "bob", Source: "cli"}
	for _, a := range []remediation.Approval{unsigned, self.Sign("it", w.signer)} {
		if err := workflows.Approve(ctx, stack.client, a); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two refused approvals recorded", func() (bool, error) {
		st, err = workflows.GetStatus(ctx, stack.client, run.GetID())
		return err == nil && len(st.Steps[0].Approvals) == 2, err
	})
	if st.Steps[0].State != remediation.StepAwaitingApproval || st.Steps[0].Approvals[0].Counted || st.Steps[0].Approvals[1].Counted {
		t.Fatalf("a refused approval counted: %+v", st.Steps[0])
	}
	if err := workflows.Approve(ctx, stack.client, good.Sign("it", w.signer)); err != nil {
		t.Fatal(err)
	}
	st = wantCompleted(t, ctx, run)
	if img := specOf(getDeployment(t, ns, "checkout")).Images[0]; img != "registry.example/checkout:v2" {
		t.Errorf("image %s after the approved step", img)
	}
	recordHistory(t, st.ID, "TestCosignWithSignedApproval-"+st.ID)
}
