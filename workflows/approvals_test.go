package workflows

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/reins-dev/reins/remediation"
)

type signer struct {
	key  ed25519.PrivateKey
	plan remediation.Plan
	// id and run are the test environment's workflow and run IDs.
	id, run string
}

func newSigner(t *testing.T, f *fakes, plan remediation.Plan) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = map[string]ed25519.PublicKey{"gw": pub}
	return signer{key: priv, plan: plan, id: "default-test-workflow-id", run: "default-test-run-id"}
}

func (s signer) approval(step int, who, group string, v remediation.Verdict) remediation.Approval {
	return remediation.Approval{
		Remediation: s.id,
		Run:         s.run,
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

// A vote that comes after its step was decided is recorded, refused,
// against that step: when a later step asks for co-signature, and at the end
// of the remediation.
func TestLateApprovalsAreRecordedOnTheirStep(t *testing.T) {
	f := newFakes()
	f.decisions[0] = remediation.Decision{Effect: remediation.EffectCosign, Approvers: 1, Group: "oncall", Risk: remediation.RiskHigh, Reasons: []string{"production scale"}}
	f.decisions[1] = remediation.Decision{Effect: remediation.EffectCosign, Approvers: 1, Group: "oncall", Risk: remediation.RiskHigh, Reasons: []string{"production scale"}}
	plan := testPlan(scaleStep("a", 4), scaleStep("b", 5))
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	// Two of oncall click at once on each step: the first vote decides it,
	// the second comes too late.
	signalAt(env, time.Minute, s.signed(0, "bob", "oncall", remediation.VerdictApprove))
	signalAt(env, time.Minute, s.signed(0, "carol", "oncall", remediation.VerdictApprove))
	signalAt(env, 2*time.Minute, s.signed(1, "dave", "oncall", remediation.VerdictApprove))
	signalAt(env, 2*time.Minute, s.signed(1, "erin", "oncall", remediation.VerdictDeny))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, errType := result(t, env)
	if st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s) %s", st.State, errType, st.Reason)
	}
	for i, want := range []struct{ counted, late string }{{"bob", "carol"}, {"dave", "erin"}} {
		a := st.Steps[i].Approvals
		if len(a) != 2 || !a[0].Counted || a[0].Approver.ID != want.counted || a[1].Counted || a[1].Approver.ID != want.late ||
			a[1].Reason != fmt.Sprintf("arrived after step %d was decided (it is done)", i) {
			t.Errorf("step %d approvals %+v, want %s counted and %s refused as late", i, a, want.counted, want.late)
		}
	}
	raws, _ := f.audit(t)
	late := map[string]int{}
	for _, raw := range raws {
		rec, _ := remediation.ParseAuditRecord(raw)
		if rec.Type != remediation.AuditApprovalRefused {
			continue
		}
		var d remediation.AuditApprovalData
		if err := json.Unmarshal(rec.Data, &d); err != nil {
			t.Fatal(err)
		}
		late[d.Approver.ID] = d.Step
	}
	if len(late) != 2 || late["carol"] != 0 || late["erin"] != 1 {
		t.Errorf("refusals recorded (approver → step) %v, want carol on step 0 and erin on step 1", late)
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
	// A signed approval of an earlier run of the same remediation (same ID,
	// same plan, so the same step digest), replayed into this run.
	otherRun := s.approval(1, "kate", "oncall", remediation.VerdictApprove)
	otherRun.Run = "an-earlier-run"
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
		{otherRun.Sign("gw", s.key), `for run "an-earlier-run" of this remediation`, 10*time.Minute + time.Second},
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

// The approvers' message: posted once with what they need to decide, updated
// after each vote, buttons gone once quorum is reached, and finally the
// outcome of the step; each update after the one before.
func TestApprovalMessageFollowsTheDecisions(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 2)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	signalAt(env, time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictApprove))
	signalAt(env, 2*time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictApprove))
	signalAt(env, 3*time.Minute, s.signed(1, "carol", "oncall", remediation.VerdictApprove))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	if st, errType := result(t, env); errType != "" || st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s)", st.State, errType)
	}
	if len(f.posts) != 1 {
		t.Fatalf("posts = %d, want 1", len(f.posts))
	}
	p := f.posts[0]
	if p.Index != 1 || p.Steps != 2 || p.Group != "oncall" || p.Needed != 2 || p.Digest != plan.StepDigest(1) ||
		p.Change != "scale shop/deployment/b 3→5" || p.Compensation != "scale shop/deployment/b back to 3" ||
		p.Explanation != plan.Explanation || p.Decision.Risk != remediation.RiskHigh || p.Deadline.IsZero() {
		t.Fatalf("post = %+v", p)
	}
	type view struct {
		votes, have int
		decided     bool
		outcome     string
	}
	var got []view
	for _, u := range f.updates {
		if len(u.Messages) != 1 || u.Messages[0].Channel != "C-oncall" {
			t.Fatalf("update of %v, want the posted message", u.Messages)
		}
		got = append(got, view{len(u.Votes), u.Request.Have, u.Decided, u.Outcome})
	}
	want := []view{
		{1, 1, false, ""},
		{2, 1, false, ""}, // bob again: refused, shown, not counted
		{3, 2, true, "approved by bob and carol; acting now"},
		{3, 2, true, "approved by bob and carol; done, verified: rollout complete"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("updates:\n got %v\nwant %v", got, want)
	}
	if v := f.updates[1].Votes[1]; v.Counted || v.Reason == "" || !v.At.Equal(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("second vote = %+v, want refused with a reason and its signing time", v)
	}
}

// Escalation posts to the escalation group; expiry closes both messages.
func TestApprovalMessageEscalatesAndExpires(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	if st, _ := result(t, env); st.State != remediation.StateDenied {
		t.Fatalf("state %s", st.State)
	}
	if len(f.posts) != 2 || f.posts[0].Group != "oncall" || f.posts[0].Escalated || f.posts[1].Group != "leads" || !f.posts[1].Escalated {
		t.Fatalf("posts = %+v", f.posts)
	}
	last := f.updates[len(f.updates)-1]
	if len(f.updates) != 1 || !last.Decided || !strings.HasPrefix(last.Outcome, "expired: ") || len(last.Messages) != 2 {
		t.Fatalf("updates = %+v", f.updates)
	}
}

// A resolved incident is recorded (status and audit trail); the remediation goes on.
func TestIncidentResolvedIsRecorded(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	at := time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalIncidentResolved, IncidentResolved{Source: "am", Fingerprint: "f1", Trigger: "replicas", At: at})
	}, time.Minute)
	signalAt(env, 2*time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictApprove))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, errType := result(t, env)
	if errType != "" || st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s)", st.State, errType)
	}
	if st.Resolved == nil || st.Resolved.Fingerprint != "f1" || !st.Resolved.At.Equal(at) {
		t.Fatalf("resolved = %+v", st.Resolved)
	}
	records, types := f.audit(t)
	found := false
	for i, typ := range types {
		if typ != remediation.AuditIncidentResolved {
			continue
		}
		rec, _ := remediation.ParseAuditRecord(records[i])
		var d remediation.AuditResolvedData
		if err := json.Unmarshal(rec.Data, &d); err != nil || d.Trigger != "replicas" || d.At != "2026-11-25T12:30:00Z" {
			t.Fatalf("resolved record %s: %v", rec.Data, err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no %s record in %v", remediation.AuditIncidentResolved, types)
	}
}

// A co-signed step that a later failure rolls back: its message, which
// said "done", ends saying the step was undone.
func TestRolledBackStepUpdatesItsMessage(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	plan.Steps = append(plan.Steps, scaleStep("c", 6))
	f.executeErr[2] = temporal.NewNonRetryableApplicationError("patch: invalid", remediation.ErrInvalid, nil)
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	signalAt(env, time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictApprove))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, errType := result(t, env)
	if errType != string(remediation.StateRolledBack) {
		t.Fatalf("state %s (%s) %s, want RolledBack", st.State, errType, st.Reason)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var outcomes []string
	for _, u := range f.updates {
		outcomes = append(outcomes, u.Outcome)
	}
	last := f.updates[len(f.updates)-1]
	if !last.Decided || last.Request.Index != 1 || len(last.Messages) != 1 ||
		last.Outcome != "approved by bob; the remediation was rolled back and this step undone: scale shop/deployment/b back to 3" {
		t.Fatalf("updates' outcomes %q, want the last to say step 1 was undone", outcomes)
	}
}
