package workflows

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/reins-dev/reins/remediation"
)

type signer struct {
	key  ed25519.PrivateKey
	plan remediation.Plan
	id   string
}

func newSigner(t *testing.T, f *fakes, plan remediation.Plan) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = map[string]ed25519.PublicKey{"gw": pub}
	return signer{key: priv, plan: plan, id: "default-test-workflow-id"}
}

func (s signer) approval(step int, who, group string, v remediation.Verdict) remediation.Approval {
	return remediation.Approval{
		Remediation: s.id,
		StepDigest:  s.plan.StepDigest(step),
		Approver:    remediation.Approver{ID: who, Source: "slack"},
		Group:       group,
		Verdict:     v,
		At:          time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
	}
}

func (s signer) signed(step int, who, group string, v remediation.Verdict) remediation.Approval {
	return s.approval(step, who, group, v).Sign("gw", s.key)
}

func cosignPlan(f *fakes, approvers int) remediation.Plan {
	f.decisions[1] = remediation.Decision{Effect: remediation.EffectCosign, Approvers: approvers, Group: "oncall", EscalationGroup: "leads",
		EscalateAfterSeconds: 900, TimeoutSeconds: 3600, Risk: remediation.RiskHigh, Reasons: []string{"production set-image"}}
	return testPlan(scaleStep("a", 4), scaleStep("b", 5))
}

func signalAt(env *testsuite.TestWorkflowEnvironment, at time.Duration, a remediation.Approval) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalApproval, a) }, at)
}

func TestApprovalLetsTheStepRun(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	signalAt(env, time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictApprove))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, errType := result(t, env)
	if st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s) %s", st.State, errType, st.Reason)
	}
	if a := st.Steps[1].Approvals; len(a) != 1 || !a[0].Counted || a[0].Approver.ID != "bob" {
		t.Errorf("approvals %+v", a)
	}
}

func TestDenyVerdictCompensates(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	signalAt(env, time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictDeny))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, _ := result(t, env)
	if st.State != remediation.StateDenied || !contains(st.Reason, "denied by bob") {
		t.Fatalf("state %s reason %q", st.State, st.Reason)
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 0"})
}

// Every approval below is refused; none counts, so the step times out denied.
func TestRejectedApprovalsNeverCount(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 2)
	s := newSigner(t, f, plan)
	forged := s.signed(1, "mallory", "oncall", remediation.VerdictApprove)
	forged.Approver.ID = "carol" // altered after signing
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherRemediation := s.approval(1, "dave", "oncall", remediation.VerdictApprove)
	otherRemediation.Remediation = "another-remediation"
	cases := []struct {
		a    remediation.Approval
		why  string
		from time.Duration
	}{
		{s.signed(1, "bob", "oncall", remediation.VerdictApprove), "", time.Minute},
		{s.signed(1, "bob", "oncall", remediation.VerdictApprove), "already counted", 2 * time.Minute},
		{s.signed(1, "sre-agent", "oncall", remediation.VerdictApprove), "cannot co-sign their own step", 3 * time.Minute},
		{s.signed(1, "erin", "marketing", remediation.VerdictApprove), "may not co-sign", 4 * time.Minute},
		{s.signed(0, "frank", "oncall", remediation.VerdictApprove), "another step", 5 * time.Minute},
		{s.approval(1, "grace", "oncall", remediation.VerdictApprove), "unsigned", 6 * time.Minute},
		{forged, "altered or forged", 7 * time.Minute},
		{s.approval(1, "heidi", "oncall", remediation.VerdictApprove).Sign("gw", otherKey), "altered or forged", 8 * time.Minute},
		{s.approval(1, "ivan", "oncall", remediation.VerdictApprove).Sign("other", otherKey), "unknown key", 9 * time.Minute},
		{otherRemediation.Sign("gw", s.key), "not this one", 10 * time.Minute},
		{s.signed(1, "judy", "leads", remediation.VerdictApprove), "may not co-sign", 11 * time.Minute},
	}
	env := newEnv(t, f)
	for _, c := range cases {
		signalAt(env, c.from, c.a)
	}
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, _ := result(t, env)
	if st.State != remediation.StateDenied || !contains(st.Reason, "1 of 2 co-signatures within 1h0m0s") {
		t.Fatalf("state %s reason %q", st.State, st.Reason)
	}
	got := st.Steps[1].Approvals
	if len(got) != len(cases) {
		t.Fatalf("%d approvals recorded, want %d: %+v", len(got), len(cases), got)
	}
	for i, c := range cases {
		if (c.why == "") != got[i].Counted || !contains(got[i].Reason, c.why) {
			t.Errorf("approval %d (%s): counted %t reason %q, want reason containing %q", i, c.a.Approver.ID, got[i].Counted, got[i].Reason, c.why)
		}
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 0"})
}

func TestEscalationGroupCountsAfterEscalation(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	signalAt(env, 20*time.Minute, s.signed(1, "judy", "leads", remediation.VerdictApprove))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, _ := result(t, env)
	if st.State != remediation.StateCompleted || !st.Steps[1].Escalated {
		t.Fatalf("state %s escalated %t reason %q", st.State, st.Steps[1].Escalated, st.Reason)
	}
}

func TestApprovalBeforeRequestDoesNotCount(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	// Sent at once, while step 0 runs: it must not pre-approve step 1.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalApproval, s.signed(1, "bob", "oncall", remediation.VerdictApprove)) }, 0)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, _ := result(t, env)
	if st.State != remediation.StateDenied {
		t.Fatalf("state %s, want Denied after the timeout", st.State)
	}
	if a := st.Steps[1].Approvals; len(a) != 1 || a[0].Counted || !contains(a[0].Reason, "before this step asked") {
		t.Errorf("approvals %+v", a)
	}
}
