package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// Defaults for RemediationOptions.
const (
	DefaultVerifyTimeout   = 5 * time.Minute
	DefaultEscalateAfter   = 15 * time.Minute
	DefaultApprovalTimeout = 60 * time.Minute
)

// RemediationOptions tune one remediation; the starter sets them from config.
type RemediationOptions struct {
	// VerifyTimeout bounds each step's verification. Default DefaultVerifyTimeout.
	VerifyTimeout time.Duration `json:"verify_timeout,omitempty"`
	// EscalateAfter and ApprovalTimeout bound the wait for co-signers when the
	// policy does not set them. Defaults DefaultEscalateAfter, DefaultApprovalTimeout.
	EscalateAfter   time.Duration `json:"escalate_after,omitempty"`
	ApprovalTimeout time.Duration `json:"approval_timeout,omitempty"`
}

func (o RemediationOptions) withDefaults() RemediationOptions {
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = DefaultVerifyTimeout
	}
	if o.EscalateAfter <= 0 {
		o.EscalateAfter = DefaultEscalateAfter
	}
	if o.ApprovalTimeout <= 0 {
		o.ApprovalTimeout = DefaultApprovalTimeout
	}
	return o
}

// Remediation runs a plan step by step: policy decision, co-signature when the
// policy asks for it, before-state capture, compensation pushed, action,
// verification. On a denial, failure, abort or cancellation it runs the
// compensations of the steps so far last-in-first-out on a disconnected
// context. It returns the final Status; when the remediation did not complete
// it fails with an application error whose type is the final State and whose
// details are the Status.
func Remediation(ctx workflow.Context, in RemediationInput) (Status, error) {
	r := newRun(ctx, in)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return r.snapshot(), nil }); err != nil {
		return r.status, fmt.Errorf("register status query: %w", err)
	}
	r.audit.start(ctx)
	r.startMessenger(ctx)
	r.recordStarted(ctx)
	r.watchResolved(ctx)
	if err := in.Plan.Validate(); err != nil {
		return r.end(ctx, remediation.StateRejected, err.Error())
	}
	r.upsertStart(ctx)

	workCtx, cancelWork := workflow.WithCancel(ctx)
	abortCh := workflow.GetSignalChannel(ctx, SignalAbort)
	workflow.Go(ctx, func(gctx workflow.Context) {
		var sig AbortSignal
		abortCh.Receive(gctx, &sig)
		r.abort = &sig
		cancelWork()
	})

	for i := range in.Plan.Steps {
		if err := r.runStep(workCtx, i); err != nil {
			return r.fail(ctx, i, err)
		}
	}
	return r.end(ctx, remediation.StateCompleted, "")
}

// run is the state of one remediation.
type run struct {
	ctx    workflow.Context
	plan   remediation.Plan
	opts   RemediationOptions
	status Status
	// compensations are pushed before each step acts and run in reverse.
	compensations []compensation
	abort         *AbortSignal
	approvals     workflow.ReceiveChannel
	// risk is the highest risk the policy gave a step so far.
	risk remediation.Risk
	// audit is the remediation's audit chain.
	audit *auditor
	// msgs posts and updates the approvers' messages.
	msgs *messenger
	// wrote marks the steps whose write landed.
	wrote map[int]bool
	// asked holds the co-signature request of each co-signed step, whose
	// message says so when the step is undone.
	asked map[int]remediation.ApprovalRequest
	// acting is set while a step reads its target and schedules its write:
	// the audit records and approver messages wait, so that the write's
	// task is the first one dispatched.
	acting bool
}

type compensation struct {
	index  int
	before remediation.Snapshot
}

func newRun(ctx workflow.Context, in RemediationInput) *run {
	exec := workflow.GetInfo(ctx).WorkflowExecution
	r := &run{
		ctx:       ctx,
		plan:      in.Plan,
		opts:      in.Options.withDefaults(),
		approvals: workflow.GetSignalChannel(ctx, SignalApproval),
		audit:     newAuditor(ctx),
		asked:     map[int]remediation.ApprovalRequest{},
		wrote:     map[int]bool{},
		status: Status{
			ID:          exec.ID,
			RunID:       exec.RunID,
			State:       remediation.StateRunning,
			Requester:   in.Plan.Requester.String(),
			RequestedBy: in.Plan.Requester,
			DryRun:      in.Plan.DryRun,
		},
	}
	r.audit.held = func() bool { return r.acting }
	if in.Plan.Validate() == nil {
		r.status.PlanDigest = in.Plan.Digest()
	}
	for i, s := range in.Plan.Steps {
		st := StepStatus{
			Index:        i,
			Description:  s.Describe(),
			Action:       s.Action,
			Target:       s.Target.String(),
			State:        remediation.StepPending,
			Irreversible: s.Action.Irreversible(),
		}
		if r.status.PlanDigest != "" {
			st.Digest = in.Plan.StepDigest(i)
		}
		r.status.Steps = append(r.status.Steps, st)
	}
	return r
}

// snapshot copies the status for the query (so a caller never sees it mid-update).
func (r *run) snapshot() Status {
	s := r.status
	s.Steps = append([]StepStatus(nil), r.status.Steps...)
	return s
}

func (r *run) ref(i int) remediation.StepRef {
	return remediation.StepRef{
		Remediation: r.status.ID,
		Index:       i,
		Step:        r.plan.Steps[i],
		Requester:   r.plan.Requester,
		Environment: r.plan.Environment,
		DryRun:      r.plan.DryRun,
	}
}

// stepError ends the step loop with a final state.
type stepError struct {
	state  remediation.State
	reason string
}

func (e *stepError) Error() string { return string(e.state) + ": " + e.reason }

func (r *run) runStep(ctx workflow.Context, i int) error {
	step := r.plan.Steps[i]
	st := &r.status.Steps[i]
	logger := workflow.GetLogger(ctx)

	st.State = remediation.StepEvaluating
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("step %d of %d: %s", i+1, len(r.plan.Steps), st.Description))
	decision := r.evaluate(ctx, i)
	if ctx.Err() != nil && workflow.GetVersion(ctx, cancelledPolicyChange, workflow.DefaultVersion, 1) == 1 {
		// Aborted or cancelled while the policy decided: the deny
		// evaluate made of the cancelled call is no decision.
		return ctx.Err()
	}
	st.Decision = &decision
	r.record(ctx, remediation.AuditPolicyDecided, remediation.AuditDecisionData{AuditStep: r.stepRef(i), Decision: decision})
	r.upsertRisk(ctx, decision.Risk)
	logger.Info("policy decision", "remediation", r.status.ID, "step", i, "target", st.Target,
		"effect", decision.Effect, "risk", decision.Risk, "bundle", decision.Bundle)
	switch decision.Effect {
	case remediation.EffectAllow:
	case remediation.EffectCosign:
		req, err := r.awaitApprovals(ctx, i, decision)
		if err != nil {
			return err
		}
		// The approvers' message ends with what became of the step.
		r.asked[i] = req
		defer func() { r.updateApprovers(i, req, true, r.stepOutcome(i)) }()
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("step %d of %d: %s — approved by %s", i+1, len(r.plan.Steps), st.Description, joinNames(r.approvers(i))))
	default:
		st.State = remediation.StepDenied
		return &stepError{remediation.StateDenied, fmt.Sprintf("step %d (%s) denied by policy: %s", i, st.Description, joinReasons(decision.Reasons))}
	}

	st.State = remediation.StepRunning
	// From version writeFirst the bookkeeping the step caused so far waits
	// until its write is scheduled (run.acting).
	version := workflow.GetVersion(ctx, observeLocal, workflow.DefaultVersion, writeWaitsCancel)
	r.acting = version >= writeFirst
	observed, err := r.observe(ctx, i, "observe "+st.Target)
	if err != nil {
		r.acting = false
		st.State = remediation.StepFailed
		st.Error = "could not read the target before acting: " + errorMessage(err)
		r.record(ctx, remediation.AuditActionFailed, remediation.AuditActionData{
			AuditStep: r.stepRef(i), Action: step.Action, Change: step.Describe(), DryRun: r.plan.DryRun, Error: st.Error, Approvers: r.approvers(i)})
		return err
	}
	st.Before = &observed.Snapshot
	st.Compensation = remediation.DescribeCompensation(step, observed.Snapshot)
	// Pushed before acting: if the action half-happens, its undo still runs
	// (and is a no-op when nothing changed).
	if !step.Action.Irreversible() {
		r.compensations = append(r.compensations, compensation{index: i, before: observed.Snapshot})
	}

	var executed remediation.ExecuteResult
	in := remediation.ExecuteInput{StepRef: r.ref(i), Before: observed.Snapshot, At: workflow.Now(ctx).UTC()}
	action := remediation.AuditActionData{
		AuditStep: r.stepRef(i), Action: step.Action, Change: remediation.DescribeChange(step, observed.Snapshot),
		Before: observed.Snapshot.Brief(), DryRun: r.plan.DryRun, Approvers: r.approvers(i),
	}
	wopts := writeOptions(r.actionSummary(i, observed.Snapshot))
	// From version writeWaitsCancel an abort waits for a write in flight to
	// end, so that the undo runs after it, never before it lands.
	wopts.WaitForCancellation = version >= writeWaitsCancel
	write := workflow.ExecuteActivity(withActivity(ctx, wopts), remediation.ActivityExecute, in)
	r.acting = false
	if err := write.Get(ctx, &executed); err != nil {
		st.State = remediation.StepFailed
		st.Error = errorMessage(err)
		action.Error = st.Error
		r.recordFailedLease(ctx, i, "action", err, func() { r.record(ctx, remediation.AuditActionFailed, action) })
		return err
	}
	st.Changed = executed.Changed
	r.wrote[i] = true
	action.After, action.Changed = executed.After.Brief(), executed.Changed
	r.recordLease(ctx, i, "action", executed.Lease, func() { r.record(ctx, remediation.AuditActionApplied, action) })

	st.State = remediation.StepVerifying
	var verified remediation.VerifyResult
	// One deadline for every attempt: a retry does not start the wait again.
	vin := remediation.VerifyInput{StepRef: r.ref(i), Before: observed.Snapshot, Timeout: r.opts.VerifyTimeout, Deadline: workflow.Now(ctx).Add(r.opts.VerifyTimeout)}
	if err := workflow.ExecuteActivity(withActivity(ctx, verifyOptions("verify "+st.Description, r.opts.VerifyTimeout)),
		remediation.ActivityVerify, vin).Get(ctx, &verified); err != nil {
		st.State = remediation.StepFailed
		st.Error = "verification failed: " + errorMessage(err)
		r.record(ctx, remediation.AuditVerificationFailed, remediation.AuditVerificationData{AuditStep: r.stepRef(i), Error: errorMessage(err)})
		return err
	}
	st.Verified = verified.Observed
	st.State = remediation.StepDone
	r.record(ctx, remediation.AuditVerificationPassed, remediation.AuditVerificationData{AuditStep: r.stepRef(i), Observed: verified.Observed})
	return nil
}

// observeLocal is the change under which a target is read by a local
// activity (version 1), a step's write is scheduled before the audit
// records and approver messages it caused (version writeFirst), and an abort
// waits for a write in flight to end before anything is undone (version
// writeWaitsCancel).
// Remediations whose history predates a version replay without it.
const (
	observeLocal     = "observe-local"
	writeFirst       = workflow.Version(2)
	writeWaitsCancel = workflow.Version(3)
)

// abortedAfterWriteChange: from its version 1, a step whose write landed
// before an abort stopped its verification ends done (then undone, or not
// compensated when irreversible), not skipped.
const abortedAfterWriteChange = "aborted-after-write"

// rollbackMessagesChange: from its version 1, the approvers' message of a
// co-signed step says when the step is undone.
const rollbackMessagesChange = "rollback-messages"

// cancelledPolicyChange: from its version 1, an abort or cancellation while
// a step's policy is evaluated ends the remediation Aborted, not Denied by a
// decision nobody made.
const cancelledPolicyChange = "cancelled-policy"

// failedLeaseChange: from its version 1, the credential a failed action or
// undo used (its lease, in the error's details) is recorded too.
const failedLeaseChange = "failed-step-lease"

// lateApprovalsChange: from its version 1, the approvals that came after the
// last co-signature wait are recorded when the remediation ends.
const lateApprovalsChange = "late-approvals"

// observe reads step i's target with the worker's read-only identity. The
// read is a local activity, run in the workflow task that goes on to
// schedule the write: the before-state is in history before the write is
// scheduled, without a round trip through the task queue of its own (the
// read is one GET; a co-signed step acts that much sooner after its
// approval).
func (r *run) observe(ctx workflow.Context, i int, summary string) (remediation.ObserveResult, error) {
	in := remediation.ObserveInput{Step: r.plan.Steps[i]}
	var observed remediation.ObserveResult
	if workflow.GetVersion(ctx, observeLocal, workflow.DefaultVersion, writeWaitsCancel) == workflow.DefaultVersion {
		err := workflow.ExecuteActivity(withActivity(ctx, readOptions(summary)), remediation.ActivityObserve, in).Get(ctx, &observed)
		return observed, err
	}
	o := readOptions(summary)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: o.StartToCloseTimeout, RetryPolicy: o.RetryPolicy, Summary: o.Summary})
	err := workflow.ExecuteLocalActivity(lctx, remediation.ActivityObserve, in).Get(ctx, &observed)
	return observed, err
}

// stepOutcome is one line on what became of co-signed step i, for its
// approvers' message.
func (r *run) stepOutcome(i int) string {
	st := r.status.Steps[i]
	approved := "approved by " + joinNames(r.approvers(i)) + "; "
	switch st.State {
	case remediation.StepDone:
		out := approved + "done"
		if st.Verified != "" {
			out += ", verified: " + st.Verified
		}
		if r.plan.DryRun {
			out += " (dry run)"
		}
		return out
	case remediation.StepFailed:
		return approved + "failed: " + st.Error + "; the remediation is rolled back"
	default:
		return approved + "stopped (" + string(st.State) + ")"
	}
}

// watchResolved records the incident's resolution when it is signalled.
func (r *run) watchResolved(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalIncidentResolved)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var sig IncidentResolved
			ch.Receive(gctx, &sig)
			if r.audit.closed {
				return // the trail is closed: the remediation has ended
			}
			r.status.Resolved = &sig
			r.record(gctx, remediation.AuditIncidentResolved, remediation.AuditResolvedData{
				Source: sig.Source, Fingerprint: sig.Fingerprint, Trigger: sig.Trigger, At: sig.At.UTC().Format(time.RFC3339Nano)})
			workflow.GetLogger(gctx).Info("incident resolved", "remediation", r.status.ID, "source", sig.Source, "fingerprint", sig.Fingerprint)
		}
	})
}

// evaluate asks the policy; any failure to get a decision is a deny (fail closed).
func (r *run) evaluate(ctx workflow.Context, i int) remediation.Decision {
	var res remediation.PolicyResult
	in := remediation.PolicyInput{Remediation: r.status.ID, Plan: r.plan, Index: i, Now: workflow.Now(ctx).UTC()}
	err := workflow.ExecuteActivity(withActivity(ctx, policyOptions("policy: "+r.status.Steps[i].Description)),
		remediation.ActivityEvaluatePolicy, in).Get(ctx, &res)
	if err != nil {
		return remediation.Decision{Effect: remediation.EffectDeny, Risk: remediation.RiskCritical,
			Reasons: []string{"policy evaluation failed, so the step is denied (fail closed): " + errorMessage(err)}}
	}
	switch res.Decision.Effect {
	case remediation.EffectAllow:
		return res.Decision
	case remediation.EffectCosign:
		if res.Decision.Approvers >= 1 && res.Decision.Group != "" {
			return res.Decision
		}
		res.Decision.Reasons = append(res.Decision.Reasons, "policy asked for co-signature without approvers or group, so the step is denied")
	default:
		if res.Decision.Effect != remediation.EffectDeny {
			res.Decision.Reasons = append(res.Decision.Reasons, fmt.Sprintf("policy returned unknown effect %q, so the step is denied", res.Decision.Effect))
		}
	}
	res.Decision.Effect = remediation.EffectDeny
	return res.Decision
}

// tellApproversUndone updates the message of co-signed step i, once the
// remediation is rolled back, with what became of the step: what approvers
// saw last ("done") is no longer true.
func (r *run) tellApproversUndone(ctx workflow.Context, i int, what string) {
	req, ok := r.asked[i]
	if !ok || workflow.GetVersion(ctx, rollbackMessagesChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	r.updateApprovers(i, req, true, "approved by "+joinNames(r.approvers(i))+"; the remediation was rolled back and this step "+what)
}

// fail compensates after step i ended the loop with err, and ends the workflow.
func (r *run) fail(ctx workflow.Context, i int, err error) (Status, error) {
	state, reason := remediation.StateRolledBack, fmt.Sprintf("step %d (%s) failed: %s", i, r.status.Steps[i].Description, errorMessage(err))
	var se *stepError
	switch {
	case errors.As(err, &se):
		state, reason = se.state, se.reason
	case r.abort != nil:
		state, reason = remediation.StateAborted, "aborted"
		if r.abort.By != "" {
			reason += " by " + r.abort.By
		}
		if r.abort.Reason != "" {
			reason += ": " + r.abort.Reason
		}
	case temporal.IsCanceledError(err) || ctx.Err() != nil:
		state, reason = remediation.StateAborted, "workflow cancelled"
	}
	// The step the abort or cancellation stopped did not happen (awaiting
	// co-signers, running), and its undo below still runs if it began to
	// act; one whose write had landed (stopped while verifying) did
	// happen, and is undone, or reported as not undone when irreversible.
	if st := &r.status.Steps[i]; state == remediation.StateAborted && st.State != remediation.StepDone {
		if r.wrote[i] && workflow.GetVersion(ctx, abortedAfterWriteChange, workflow.DefaultVersion, 1) == 1 {
			st.State, st.Error = remediation.StepDone, "applied, then "+reason+" before it was verified"
		} else {
			st.State, st.Error = remediation.StepSkipped, reason
		}
	}
	r.status.Reason = reason
	if failed := r.compensate(ctx); len(failed) > 0 {
		state = remediation.StateNeedsHuman
		reason = fmt.Sprintf("%s; then compensation of step(s) %v kept failing: the cluster may be half-changed, a human must finish the rollback", reason, failed)
	}
	for j := i + 1; j < len(r.status.Steps); j++ {
		r.status.Steps[j].State = remediation.StepSkipped
	}
	if ctx.Err() != nil && state == remediation.StateAborted {
		r.status.State, r.status.Reason = state, reason
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		r.upsert(dctx, AttrState.ValueSet(string(state)))
		r.flushMessages(dctx)
		r.recordEnded(dctx)
		r.audit.flush(dctx)
		return r.snapshot(), temporal.NewCanceledError(r.snapshot())
	}
	return r.end(ctx, state, reason)
}

// compensate runs the pushed compensations last-in-first-out on a
// disconnected context (so a cancellation cannot skip them), and returns the
// steps whose compensation failed after its retries.
func (r *run) compensate(ctx workflow.Context) []int {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	var failed []int
	for k := len(r.compensations) - 1; k >= 0; k-- {
		c := r.compensations[k]
		st := &r.status.Steps[c.index]
		st.State = remediation.StepCompensating
		var res remediation.CompensateResult
		in := remediation.CompensateInput{StepRef: r.ref(c.index), Before: c.before}
		undo := remediation.AuditCompensationData{AuditStep: r.stepRef(c.index), Undo: st.Compensation}
		err := workflow.ExecuteActivity(withActivity(dctx, compensateOptions("undo step "+strconv.Itoa(c.index)+": "+st.Compensation)),
			remediation.ActivityCompensate, in).Get(dctx, &res)
		if err != nil {
			st.State = remediation.StepCompensationFailed
			st.Error = "compensation failed: " + errorMessage(err)
			failed = append(failed, c.index)
			workflow.GetLogger(dctx).Error("compensation failed", "remediation", r.status.ID, "step", c.index, "target", st.Target, "error", err)
			undo.Error = errorMessage(err)
			r.recordFailedLease(dctx, c.index, "compensation", err, func() { r.record(dctx, remediation.AuditCompensationFailed, undo) })
			r.tellApproversUndone(dctx, c.index, "its undo FAILED ("+undo.Error+"): a human must finish the rollback")
			continue
		}
		st.State = remediation.StepCompensated
		undo.Changed, undo.Summary = res.Changed, res.Summary
		r.recordLease(dctx, c.index, "compensation", res.Lease, func() { r.record(dctx, remediation.AuditCompensationApplied, undo) })
		r.tellApproversUndone(dctx, c.index, "undone: "+cmp.Or(res.Summary, st.Compensation))
	}
	for i := range r.status.Steps {
		if st := &r.status.Steps[i]; st.Irreversible && st.State == remediation.StepDone {
			st.State = remediation.StepNotCompensated
			r.record(dctx, remediation.AuditCompensationSkipped, remediation.AuditCompensationData{
				AuditStep: r.stepRef(i), Undo: remediation.DescribeCompensation(r.plan.Steps[i], remediation.Snapshot{})})
		}
	}
	r.compensations = nil
	return failed
}

// end sets the final state and returns the workflow's result.
func (r *run) end(ctx workflow.Context, state remediation.State, reason string) (Status, error) {
	r.status.State, r.status.Reason = state, reason
	if state != remediation.StateRejected {
		r.upsert(ctx, AttrState.ValueSet(string(state)))
	}
	details := string(state)
	if reason != "" {
		details += ": " + reason
	}
	workflow.SetCurrentDetails(ctx, details)
	// Approvals that came after the last co-signature wait are recorded too.
	if len(r.status.Steps) > 0 && workflow.GetVersion(ctx, lateApprovalsChange, workflow.DefaultVersion, 1) == 1 {
		r.refuseLateApprovals(ctx, -1)
	}
	r.flushMessages(ctx)
	r.recordEnded(ctx)
	r.audit.flush(ctx)
	final := r.snapshot()
	if state == remediation.StateCompleted {
		return final, nil
	}
	return final, temporal.NewNonRetryableApplicationError(reason, string(state), nil, final)
}

func joinReasons(reasons []string) string {
	if len(reasons) == 0 {
		return "no reason given"
	}
	out := reasons[0]
	for _, s := range reasons[1:] {
		out += "; " + s
	}
	return out
}

// errorMessage is the innermost useful message of an activity error.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	return err.Error()
}
