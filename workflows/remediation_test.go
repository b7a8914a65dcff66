package workflows

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// fakes are programmable activities that record what they were asked.
type fakes struct {
	mu            sync.Mutex
	calls         []string
	decisions     map[int]remediation.Decision
	policyErr     error
	executeErr    map[int]error
	verifyErr     map[int]error
	compensateErr map[int]error
	keys          map[string]ed25519.PublicKey
	// leases are returned by Execute, by step.
	leases map[int]*remediation.LeaseInfo
	// records are the audit records delivered, in order; auditFailures
	// makes the first deliveries of a record type fail.
	records       [][]byte
	auditFailures map[string]int
	auditAttempts int
	// posts and updates are the approval messages asked for, in order.
	posts   []remediation.ApprovalRequest
	updates []remediation.UpdateApprovalInput
	// verifyDeadlines are the deadlines Verify was given, in order.
	verifyDeadlines []time.Time
	// duringPolicy, duringWrite and duringVerify run inside Evaluate,
	// Execute and Verify of a step, before they answer (Execute records
	// "wrote i" after it).
	duringPolicy, duringWrite, duringVerify map[int]func()
}

func newFakes() *fakes {
	return &fakes{
		decisions:     map[int]remediation.Decision{},
		executeErr:    map[int]error{},
		verifyErr:     map[int]error{},
		compensateErr: map[int]error{},
		leases:        map[int]*remediation.LeaseInfo{},
		auditFailures: map[string]int{},
	}
}

func (f *fakes) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakes) Evaluate(_ context.Context, in remediation.PolicyInput) (remediation.PolicyResult, error) {
	f.record("policy %d", in.Index)
	if during := f.duringPolicy[in.Index]; during != nil {
		during()
	}
	if f.policyErr != nil {
		return remediation.PolicyResult{}, f.policyErr
	}
	d, ok := f.decisions[in.Index]
	if !ok {
		d = remediation.Decision{Effect: remediation.EffectAllow, Risk: remediation.RiskLow, Reasons: []string{"ok"}, Bundle: "b1"}
	}
	return remediation.PolicyResult{Decision: d}, nil
}

func (f *fakes) Observe(_ context.Context, in remediation.ObserveInput) (remediation.ObserveResult, error) {
	three := int32(3)
	return remediation.ObserveResult{Snapshot: remediation.Snapshot{Exists: true, UID: "u-" + in.Step.Target.Name, Replicas: &three}}, nil
}

func (f *fakes) Execute(_ context.Context, in remediation.ExecuteInput) (remediation.ExecuteResult, error) {
	f.record("execute %d", in.Index)
	if during := f.duringWrite[in.Index]; during != nil {
		during()
		f.record("wrote %d", in.Index)
	}
	if err := f.executeErr[in.Index]; err != nil {
		return remediation.ExecuteResult{}, err
	}
	return remediation.ExecuteResult{Changed: true, Lease: f.leases[in.Index]}, nil
}

// Record is the audit activity: it checks the record as the real one does
// and keeps one copy per id.
func (f *fakes) Record(_ context.Context, in remediation.RecordAuditInput) (remediation.RecordAuditResult, error) {
	rec, err := remediation.ParseAuditRecord(in.Record)
	if err != nil {
		return remediation.RecordAuditResult{}, temporal.NewNonRetryableApplicationError(err.Error(), remediation.ErrAuditInvalid, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auditAttempts++
	present := false
	for _, r := range f.records {
		present = present || string(r) == string(in.Record)
	}
	if !present {
		f.records = append(f.records, append([]byte(nil), in.Record...))
	}
	if f.auditFailures[rec.Type] > 0 {
		// Stored, but the activity fails as if the worker died before replying.
		f.auditFailures[rec.Type]--
		return remediation.RecordAuditResult{}, errors.New("sink unavailable")
	}
	if present {
		return remediation.RecordAuditResult{ID: rec.ID, Present: []string{"fake"}}, nil
	}
	return remediation.RecordAuditResult{ID: rec.ID, Stored: []string{"fake"}}, nil
}

// audit returns the delivered records and their types, in order.
func (f *fakes) audit(t *testing.T) ([][]byte, []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var types []string
	for _, raw := range f.records {
		rec, err := remediation.ParseAuditRecord(raw)
		if err != nil {
			t.Fatalf("delivered record does not parse: %v", err)
		}
		types = append(types, rec.Type)
	}
	return append([][]byte(nil), f.records...), types
}

func (f *fakes) Verify(_ context.Context, in remediation.VerifyInput) (remediation.VerifyResult, error) {
	f.record("verify %d", in.Index)
	f.mu.Lock()
	f.verifyDeadlines = append(f.verifyDeadlines, in.Deadline)
	f.mu.Unlock()
	if during := f.duringVerify[in.Index]; during != nil {
		during()
	}
	if err := f.verifyErr[in.Index]; err != nil {
		return remediation.VerifyResult{}, err
	}
	return remediation.VerifyResult{Observed: "rollout complete"}, nil
}

func (f *fakes) Compensate(_ context.Context, in remediation.CompensateInput) (remediation.CompensateResult, error) {
	f.record("compensate %d", in.Index)
	if err := f.compensateErr[in.Index]; err != nil {
		return remediation.CompensateResult{}, err
	}
	return remediation.CompensateResult{Changed: true}, nil
}

func (f *fakes) Check(_ context.Context, in remediation.CheckApprovalInput) (remediation.CheckApprovalResult, error) {
	if err := in.Approval.Verify(f.keys); err != nil {
		return remediation.CheckApprovalResult{Reason: err.Error()}, nil
	}
	if r := in.Rule.Check(in.Approval); r != "" {
		return remediation.CheckApprovalResult{Reason: r}, nil
	}
	return remediation.CheckApprovalResult{Accepted: true}, nil
}

// NotifyApprovers "posts" one message per request, to a channel named after the group.
func (f *fakes) NotifyApprovers(_ context.Context, in remediation.ApprovalRequest) (remediation.NotifyApproversResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts = append(f.posts, in)
	return remediation.NotifyApproversResult{Messages: []remediation.ApprovalMessage{{Channel: "C-" + in.Group, TS: fmt.Sprintf("%d.0", len(f.posts))}}}, nil
}

func (f *fakes) UpdateApprovalMessage(_ context.Context, in remediation.UpdateApprovalInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, in)
	return nil
}

func (f *fakes) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// compensations lists only the compensate calls, in order.
func (f *fakes) compensations() []string {
	var out []string
	for _, c := range f.seen() {
		if len(c) > 10 && c[:10] == "compensate" {
			out = append(out, c)
		}
	}
	return out
}

func newEnv(t *testing.T, f *fakes) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Remediation, workflow.RegisterOptions{Name: RemediationWorkflowName})
	f.register(env.RegisterActivityWithOptions)
	env.SetTestTimeout(30 * time.Second)
	return env
}

// register registers f's activities, by their names, with reg (a test
// environment's or a worker's RegisterActivityWithOptions).
func (f *fakes) register(reg func(fn any, opts activity.RegisterOptions)) {
	for name, fn := range map[string]any{
		remediation.ActivityEvaluatePolicy:        f.Evaluate,
		remediation.ActivityObserve:               f.Observe,
		remediation.ActivityExecute:               f.Execute,
		remediation.ActivityVerify:                f.Verify,
		remediation.ActivityCompensate:            f.Compensate,
		remediation.ActivityCheckApproval:         f.Check,
		remediation.ActivityRecordAudit:           f.Record,
		remediation.ActivityNotifyApprovers:       f.NotifyApprovers,
		remediation.ActivityUpdateApprovalMessage: f.UpdateApprovalMessage,
	} {
		reg(fn, activity.RegisterOptions{Name: name})
	}
}

func scaleStep(name string, replicas int32) remediation.Step {
	return remediation.Step{
		Action:        remediation.ActionScale,
		Target:        remediation.Target{Namespace: "shop", Kind: remediation.KindDeployment, Name: name},
		Params:        remediation.Params{Replicas: &replicas},
		Justification: "absorb the retry backlog while things settle",
	}
}

func testPlan(steps ...remediation.Step) remediation.Plan {
	return remediation.Plan{
		Incident:    remediation.Incident{Source: "test", Fingerprint: "f1"},
		Requester:   remediation.Requester{Kind: remediation.RequesterAgent, Name: "sre-agent"},
		Environment: "staging",
		Explanation: "test plan",
		Steps:       steps,
	}
}

// result runs the workflow to its end and returns its Status and the type of
// its failure ("" when it completed).
func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) (Status, string) {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	err := env.GetWorkflowError()
	var st Status
	if err == nil {
		if err := env.GetWorkflowResult(&st); err != nil {
			t.Fatalf("decode result: %v", err)
		}
		return st, ""
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			if derr := canceled.Details(&st); derr != nil {
				t.Fatalf("decode cancel details: %v", derr)
			}
			return st, "canceled"
		}
		t.Fatalf("workflow error is %T %v, want an ApplicationError", err, err)
	}
	if derr := appErr.Details(&st); derr != nil {
		t.Fatalf("decode failure details: %v", derr)
	}
	return st, appErr.Type()
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestHappyPath(t *testing.T) {
	f := newFakes()
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5))})
	st, errType := result(t, env)
	if errType != "" || st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s), want Completed", st.State, errType)
	}
	equal(t, "calls", f.seen(), []string{"policy 0", "execute 0", "verify 0", "policy 1", "execute 1", "verify 1"})
	for _, s := range st.Steps {
		if s.State != remediation.StepDone || s.Decision == nil || s.Decision.Bundle != "b1" || s.Verified == "" {
			t.Errorf("step %d: %+v", s.Index, s)
		}
	}
}

func TestFailureAtStepKCompensatesKToOne(t *testing.T) {
	f := newFakes()
	f.executeErr[2] = temporal.NewNonRetryableApplicationError("patch: invalid", remediation.ErrInvalid, nil)
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5), scaleStep("c", 6), scaleStep("d", 2))})
	st, errType := result(t, env)
	if errType != string(remediation.StateRolledBack) || st.State != remediation.StateRolledBack {
		t.Fatalf("state %s (%s), want RolledBack", st.State, errType)
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 2", "compensate 1", "compensate 0"})
	want := []remediation.StepState{remediation.StepCompensated, remediation.StepCompensated, remediation.StepCompensated, remediation.StepSkipped}
	for i, s := range st.Steps {
		if s.State != want[i] {
			t.Errorf("step %d state %s, want %s", i, s.State, want[i])
		}
	}
	for _, c := range f.seen() {
		if c == "execute 3" {
			t.Error("step 3 ran after step 2 failed")
		}
	}
}

func TestAbortMidPlan(t *testing.T) {
	f := newFakes()
	env := newEnv(t, f)
	// Step 1 needs a co-signer who never comes; the abort arrives meanwhile.
	f.decisions[1] = remediation.Decision{Effect: remediation.EffectCosign, Approvers: 1, Group: "oncall", Risk: remediation.RiskHigh}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalAbort, AbortSignal{Reason: "wrong incident", By: "alice"})
	}, time.Minute)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5), scaleStep("c", 6))})
	st, errType := result(t, env)
	if errType != string(remediation.StateAborted) || st.State != remediation.StateAborted {
		t.Fatalf("state %s (%s), want Aborted", st.State, errType)
	}
	if st.Reason != "aborted by alice: wrong incident" {
		t.Errorf("reason %q", st.Reason)
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 0"})
	if st.Steps[1].State != remediation.StepSkipped || st.Steps[2].State != remediation.StepSkipped {
		t.Errorf("steps 1, 2: %s, %s; want skipped", st.Steps[1].State, st.Steps[2].State)
	}
}

// An abort or a cancellation while a step's policy is evaluated ends the
// remediation Aborted: the cancelled call is no decision, and no denial is
// recorded against the requester.
func TestAbortDuringPolicyIsNoDenial(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		t.Run(map[bool]string{false: "abort", true: "cancel"}[cancel], func(t *testing.T) {
			f := newFakes()
			env := newEnv(t, f)
			f.duringPolicy = map[int]func(){1: func() {
				if cancel {
					env.CancelWorkflow()
				} else {
					env.SignalWorkflow(SignalAbort, AbortSignal{Reason: "wrong incident", By: "alice"})
				}
				time.Sleep(300 * time.Millisecond)
			}}
			env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5))})
			st, errType := result(t, env)
			if st.State != remediation.StateAborted || errType == string(remediation.StateDenied) {
				t.Fatalf("state %s (%s) %s, want Aborted", st.State, errType, st.Reason)
			}
			if st.Steps[1].Decision != nil {
				t.Errorf("step 1 has the decision %+v, which nobody made", *st.Steps[1].Decision)
			}
			_, types := f.audit(t)
			if n := strings.Count(strings.Join(types, " "), remediation.AuditPolicyDecided); n != 1 {
				t.Errorf("%d policy decisions recorded, want step 0's only: %v", n, types)
			}
			equal(t, "compensations", f.compensations(), []string{"compensate 0"})
		})
	}
}

// Each step's verification gets one deadline, VerifyTimeout after it
// starts, that its retries share.
func TestVerifyGetsADeadline(t *testing.T) {
	f := newFakes()
	env := newEnv(t, f)
	start := time.Now()
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4)), Options: RemediationOptions{VerifyTimeout: 7 * time.Minute}})
	if st, errType := result(t, env); st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s)", st.State, errType)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.verifyDeadlines) != 1 {
		t.Fatalf("%d verifications", len(f.verifyDeadlines))
	}
	if d := f.verifyDeadlines[0].Sub(start); d < 7*time.Minute-time.Minute || d > 7*time.Minute+time.Minute {
		t.Errorf("deadline %s after the start, want about 7m", d)
	}
}

func TestCancelCompensatesOnDisconnectedContext(t *testing.T) {
	f := newFakes()
	env := newEnv(t, f)
	f.decisions[1] = remediation.Decision{Effect: remediation.EffectCosign, Approvers: 1, Group: "oncall", Risk: remediation.RiskHigh}
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5))})
	st, errType := result(t, env)
	if errType != "canceled" || st.State != remediation.StateAborted {
		t.Fatalf("state %s (%s), want Aborted and cancelled", st.State, errType)
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 0"})
	// The step that was awaiting its co-signer ends skipped, as on an abort.
	if s := st.Steps[1]; s.State != remediation.StepSkipped || s.Error != "workflow cancelled" {
		t.Errorf("step 1 ended %s (%q), want skipped by the cancellation", s.State, s.Error)
	}
}

func TestCompensationFailureNeedsHuman(t *testing.T) {
	f := newFakes()
	f.executeErr[2] = temporal.NewNonRetryableApplicationError("forbidden", remediation.ErrForbidden, nil)
	f.compensateErr[1] = temporal.NewNonRetryableApplicationError("forbidden", remediation.ErrForbidden, nil)
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5), scaleStep("c", 6))})
	st, errType := result(t, env)
	if errType != string(remediation.StateNeedsHuman) || st.State != remediation.StateNeedsHuman {
		t.Fatalf("state %s (%s), want NeedsHuman", st.State, errType)
	}
	// The failed compensation does not stop the others.
	equal(t, "compensations", f.compensations(), []string{"compensate 2", "compensate 1", "compensate 0"})
	if st.Steps[1].State != remediation.StepCompensationFailed {
		t.Errorf("step 1 state %s, want compensation-failed", st.Steps[1].State)
	}
	if want := "compensation of step(s) [1] kept failing"; !contains(st.Reason, want) {
		t.Errorf("reason %q does not name the step (%q)", st.Reason, want)
	}
}

func TestFailedVerificationCompensates(t *testing.T) {
	f := newFakes()
	f.verifyErr[1] = temporal.NewNonRetryableApplicationError("rollout stuck", remediation.ErrVerification, nil)
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5))})
	st, errType := result(t, env)
	if errType != string(remediation.StateRolledBack) {
		t.Fatalf("state %s (%s), want RolledBack", st.State, errType)
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 1", "compensate 0"})
	if !contains(st.Steps[1].Error, "verification failed") {
		t.Errorf("step 1 error %q", st.Steps[1].Error)
	}
}

func TestIrreversibleStepIsNeverCompensated(t *testing.T) {
	f := newFakes()
	f.executeErr[1] = temporal.NewNonRetryableApplicationError("invalid", remediation.ErrInvalid, nil)
	del := remediation.Step{
		Action: remediation.ActionDeletePod, Target: remediation.Target{Namespace: "shop", Kind: remediation.KindPod, Name: "checkout-1"},
		Justification: "the pod is wedged and holds a lock",
	}
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(del, scaleStep("b", 5))})
	st, _ := result(t, env)
	equal(t, "compensations", f.compensations(), []string{"compensate 1"})
	if st.Steps[0].State != remediation.StepNotCompensated || !st.Steps[0].Irreversible {
		t.Errorf("delete-pod step: state %s irreversible %t; want irreversible", st.Steps[0].State, st.Steps[0].Irreversible)
	}
}

// An irreversible step whose write landed before an abort stopped its
// verification happened: it ends not compensated, not skipped.
func TestAbortAfterAnIrreversibleWriteSaysItHappened(t *testing.T) {
	f := newFakes()
	env := newEnv(t, f)
	f.duringVerify = map[int]func(){0: func() {
		env.SignalWorkflow(SignalAbort, AbortSignal{Reason: "wrong pod", By: "alice"})
		time.Sleep(300 * time.Millisecond)
	}}
	del := remediation.Step{
		Action: remediation.ActionDeletePod, Target: remediation.Target{Namespace: "shop", Kind: remediation.KindPod, Name: "checkout-1"},
		Justification: "the pod is wedged and holds a lock",
	}
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(del, scaleStep("b", 5))})
	st, errType := result(t, env)
	if st.State != remediation.StateAborted {
		t.Fatalf("state %s (%s) %s, want Aborted", st.State, errType, st.Reason)
	}
	if s := st.Steps[0]; s.State != remediation.StepNotCompensated || !strings.Contains(s.Error, "applied, then aborted by alice") {
		t.Errorf("delete-pod step: %s (%q), want not compensated: it was applied", s.State, s.Error)
	}
	_, types := f.audit(t)
	if !strings.Contains(strings.Join(types, " "), remediation.AuditCompensationSkipped) {
		t.Errorf("records %v: the undo the delete cannot have is not recorded as skipped", types)
	}
}

func TestPolicyDenyCompensatesDoneSteps(t *testing.T) {
	f := newFakes()
	f.decisions[1] = remediation.Decision{Effect: remediation.EffectDeny, Risk: remediation.RiskCritical, Reasons: []string{"never scale production to 0"}, Bundle: "b1"}
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 0))})
	st, errType := result(t, env)
	if errType != string(remediation.StateDenied) {
		t.Fatalf("state %s (%s), want Denied", st.State, errType)
	}
	equal(t, "compensations", f.compensations(), []string{"compensate 0"})
	if !contains(st.Reason, "never scale production to 0") || st.Steps[1].State != remediation.StepDenied {
		t.Errorf("reason %q, step 1 %s", st.Reason, st.Steps[1].State)
	}
	for _, c := range f.seen() {
		if c == "execute 1" {
			t.Error("denied step executed")
		}
	}
}

func TestPolicyErrorFailsClosed(t *testing.T) {
	f := newFakes()
	f.policyErr = errors.New("bundle unavailable")
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4))})
	st, errType := result(t, env)
	if errType != string(remediation.StateDenied) || !contains(st.Reason, "fail closed") {
		t.Fatalf("state %s (%s) reason %q, want Denied failing closed", st.State, errType, st.Reason)
	}
	for _, c := range f.seen() {
		if c == "execute 0" {
			t.Error("step executed without a policy decision")
		}
	}
}

func TestUnknownEffectIsDeny(t *testing.T) {
	f := newFakes()
	f.decisions[0] = remediation.Decision{Effect: "yes", Risk: remediation.RiskLow}
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4))})
	st, errType := result(t, env)
	if errType != string(remediation.StateDenied) || !contains(st.Reason, "unknown effect") {
		t.Fatalf("state %s (%s) reason %q", st.State, errType, st.Reason)
	}
}

// A co-signature the policy asks for without saying how many or who is
// denied: nobody could give it, and nothing acts or waits.
func TestCosignWithoutApproversOrGroupIsDeny(t *testing.T) {
	for name, d := range map[string]remediation.Decision{
		"no approvers": {Effect: remediation.EffectCosign, Group: "oncall", Risk: remediation.RiskHigh},
		"no group":     {Effect: remediation.EffectCosign, Approvers: 1, Risk: remediation.RiskHigh},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakes()
			f.decisions[0] = d
			env := newEnv(t, f)
			env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4))})
			st, errType := result(t, env)
			if errType != string(remediation.StateDenied) || !contains(st.Reason, "co-signature without approvers or group") {
				t.Fatalf("state %s (%s) reason %q", st.State, errType, st.Reason)
			}
			for _, a := range f.seen() {
				if strings.HasPrefix(a, "execute") {
					t.Errorf("%s ran for a step denied by an incomplete co-signature", a)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.posts) != 0 {
				t.Errorf("approvers were asked %d times for a co-signature nobody could give", len(f.posts))
			}
		})
	}
}

func TestInvalidPlanRunsNothing(t *testing.T) {
	f := newFakes()
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", -1))})
	st, errType := result(t, env)
	if errType != string(remediation.StateRejected) || !contains(st.Reason, "steps[0].params.replicas") {
		t.Fatalf("state %s (%s) reason %q", st.State, errType, st.Reason)
	}
	if len(f.seen()) != 0 {
		t.Errorf("activities ran for an invalid plan: %v", f.seen())
	}
	// Only the audit trail: the attempt, and that it was rejected.
	_, types := f.audit(t)
	equal(t, "audit records", types, []string{remediation.AuditStarted, remediation.AuditEnded})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
