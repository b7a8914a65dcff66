package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// awaitApprovals waits for the co-signatures decision asks for on step i.
// Each approval signal is checked by a local activity (gateway signature,
// remediation, step digest, group, not the requester, not already counted);
// the check and its reason are recorded in history. A counted deny, or no
// quorum by the timeout, denies the step. After the escalation time the
// escalation group may co-sign too.
func (r *run) awaitApprovals(ctx workflow.Context, i int, decision remediation.Decision) (remediation.ApprovalRequest, error) {
	st := &r.status.Steps[i]
	st.State = remediation.StepAwaitingApproval
	logger := workflow.GetLogger(ctx)

	escalateAfter, timeout := r.opts.EscalateAfter, r.opts.ApprovalTimeout
	if decision.EscalateAfterSeconds > 0 {
		escalateAfter = time.Duration(decision.EscalateAfterSeconds) * time.Second
	}
	if decision.TimeoutSeconds > 0 {
		timeout = time.Duration(decision.TimeoutSeconds) * time.Second
	}
	rule := remediation.ApprovalRule{
		Remediation: r.status.ID,
		Run:         r.status.RunID,
		StepDigest:  st.Digest,
		Requester:   r.plan.Requester,
		Groups:      []string{decision.Group},
	}

	request := remediation.AuditApprovalRequestData{
		AuditStep: r.stepRef(i), Approvers: decision.Approvers, Group: decision.Group, EscalationGroup: decision.EscalationGroup,
		EscalateAfter: escalateAfter.String(), Timeout: timeout.String(),
	}
	r.record(ctx, remediation.AuditApprovalRequested, request)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("step %d of %d: %s — waiting for %d co-signer(s) from %s",
		i+1, len(r.plan.Steps), st.Description, decision.Approvers, decision.Group))

	// Approvals that arrived while nothing was awaiting co-signature never count.
	r.refuseLateApprovals(ctx, i)

	req := r.approvalRequest(ctx, i, decision, timeout)
	r.askApprovers(req)

	timerCtx, cancelTimers := workflow.WithCancel(ctx)
	defer cancelTimers()
	escalation := workflow.NewTimer(timerCtx, escalateAfter)
	deadline := workflow.NewTimer(timerCtx, timeout)
	escalated, timedOut := false, false

	for len(rule.Counted) < decision.Approvers {
		var a remediation.Approval
		got := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(r.approvals, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &a); got = true })
		if !escalated {
			sel.AddFuture(escalation, func(workflow.Future) { escalated = true })
		}
		sel.AddFuture(deadline, func(workflow.Future) { timedOut = true })
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)

		switch {
		case ctx.Err() != nil:
			r.updateApprovers(i, req, true, "the remediation was aborted before this step was decided")
			return req, ctx.Err()
		case timedOut:
			st.State = remediation.StepDenied
			request.Counted = len(rule.Counted)
			r.record(ctx, remediation.AuditApprovalExpired, request)
			reason := fmt.Sprintf("step %d (%s) denied: %d of %d co-signatures within %s",
				i, st.Description, len(rule.Counted), decision.Approvers, timeout)
			r.updateApprovers(i, req, true, "expired: "+reason+"; the remediation is rolled back")
			return req, &stepError{remediation.StateDenied, reason}
		case !got:
			// Escalated: the escalation group may co-sign from now on.
			st.Escalated = true
			if decision.EscalationGroup != "" {
				rule.Groups = append(rule.Groups, decision.EscalationGroup)
				esc := req
				esc.Group, esc.Escalated, esc.Have = decision.EscalationGroup, true, len(rule.Counted)
				r.askApprovers(esc)
			}
			r.record(ctx, remediation.AuditApprovalEscalated, r.stepRef(i))
			logger.Warn("co-signature escalated", "remediation", r.status.ID, "step", i, "group", decision.EscalationGroup)
			continue
		}

		var check remediation.CheckApprovalResult
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second, RetryPolicy: retry(3)})
		if err := workflow.ExecuteLocalActivity(lctx, remediation.ActivityCheckApproval,
			remediation.CheckApprovalInput{Approval: a, Rule: rule}).Get(ctx, &check); err != nil {
			check = remediation.CheckApprovalResult{Reason: "approval check failed, so it does not count: " + errorMessage(err)}
		}
		rec := ApprovalRecord{Approver: a.Approver, Group: a.Group, Verdict: a.Verdict, Comment: a.Comment, At: a.At, Counted: check.Accepted, Reason: check.Reason}
		st.Approvals = append(st.Approvals, rec)
		if !check.Accepted {
			logger.Warn("approval rejected", "remediation", r.status.ID, "step", i, "approver", a.Approver.ID, "reason", check.Reason)
			r.recordApproval(ctx, i, remediation.AuditApprovalRefused, a, rec, len(rule.Counted), decision.Approvers)
			r.updateApprovers(i, req, false, "")
			continue
		}
		if a.Verdict == remediation.VerdictDeny {
			st.State = remediation.StepDenied
			r.recordApproval(ctx, i, remediation.AuditApprovalRejected, a, rec, len(rule.Counted), decision.Approvers)
			reason := fmt.Sprintf("step %d (%s) denied by %s", i, st.Description, a.Approver.ID)
			if a.Comment != "" {
				reason += ": " + a.Comment
			}
			r.updateApprovers(i, req, true, reason+"; the remediation is rolled back")
			return req, &stepError{remediation.StateDenied, reason}
		}
		rule.Counted = append(rule.Counted, a.Approver.ID)
		req.Have = len(rule.Counted)
		r.recordApproval(ctx, i, remediation.AuditApprovalGiven, a, rec, len(rule.Counted), decision.Approvers)
		if len(rule.Counted) < decision.Approvers {
			r.updateApprovers(i, req, false, "")
		}
		logger.Info("approval counted", "remediation", r.status.ID, "step", i, "approver", a.Approver.ID,
			"counted", len(rule.Counted), "needed", decision.Approvers)
	}
	r.updateApprovers(i, req, true, "approved by "+joinNames(r.approvers(i))+"; acting now")
	return req, nil
}

// approvalRequest is what approvers are shown for step i: the decision, the
// change and its undo as the target is now (read with the worker's own
// read-only identity; the state the step acts on is read again after the
// approval), and the deadline.
func (r *run) approvalRequest(ctx workflow.Context, i int, decision remediation.Decision, timeout time.Duration) remediation.ApprovalRequest {
	step := r.plan.Steps[i]
	req := remediation.ApprovalRequest{
		StepRef: r.ref(i), Steps: len(r.plan.Steps), Digest: r.status.Steps[i].Digest, Run: r.status.RunID, Decision: decision,
		Explanation: r.plan.Explanation, Group: decision.Group, Needed: decision.Approvers,
		Deadline:     workflow.Now(ctx).Add(timeout).UTC(),
		Compensation: "restore the state read just before acting",
	}
	if step.Action.Irreversible() {
		req.Compensation = "none: " + string(step.Action) + " is irreversible"
	}
	if observed, err := r.observe(ctx, i, "show approvers "+r.status.Steps[i].Target); err == nil {
		req.Compensation = remediation.DescribeCompensation(step, observed.Snapshot)
		req.Change = remediation.DescribeChange(step, observed.Snapshot)
	}
	return req
}

// refuseLateApprovals records, as refused, the approvals that arrived while
// no step was awaiting co-signature: each against the step whose digest it
// carries (a vote that came after its step was decided), else against step
// asking, the step about to ask, or that has no co-signer to ask for (-1 at
// the end of the remediation: the last step).
func (r *run) refuseLateApprovals(ctx workflow.Context, asking int) {
	for {
		var a remediation.Approval
		if !r.approvals.ReceiveAsync(&a) {
			return
		}
		i, reason := asking, "arrived before this step asked for co-signature"
		if asking < 0 {
			i, reason = len(r.status.Steps)-1, "matches no step of this remediation, and arrived after its last step"
		}
		for j := range r.status.Steps {
			if j != asking && r.status.Steps[j].Digest == a.StepDigest {
				i, reason = j, fmt.Sprintf("arrived after step %d was decided (it is %s)", j, r.status.Steps[j].State)
				break
			}
		}
		st := &r.status.Steps[i]
		rec := ApprovalRecord{Approver: a.Approver, Group: a.Group, Verdict: a.Verdict, At: a.At, Reason: reason}
		st.Approvals = append(st.Approvals, rec)
		needed := 0
		if st.Decision != nil {
			needed = st.Decision.Approvers
		}
		r.recordApproval(ctx, i, remediation.AuditApprovalRefused, a, rec, 0, needed)
	}
}

// recordApproval notes what became of approval a of step i.
func (r *run) recordApproval(ctx workflow.Context, i int, typ string, a remediation.Approval, rec ApprovalRecord, have, needed int) {
	d := remediation.AuditApprovalData{
		AuditStep: r.stepRef(i), Approver: a.Approver, Group: a.Group, Verdict: a.Verdict, Comment: a.Comment,
		KeyID: a.KeyID, Counted: rec.Counted, Reason: rec.Reason, Needed: needed, Have: have,
	}
	if !a.At.IsZero() {
		d.SignedAt = a.At.UTC().Format(time.RFC3339Nano)
	}
	r.record(ctx, typ, d)
}
