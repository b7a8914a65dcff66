package workflows

import (
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// The approval messages of a remediation: a co-signature request is posted
// (ActivityNotifyApprovers) and then kept current after every decision
// (ActivityUpdateApprovalMessage). One workflow goroutine, the messenger,
// does both in the order they were asked for, so an update never overtakes
// the post it updates or an earlier update. The step never waits for Slack:
// approvals arriving while the message is being posted are buffered in the
// signal channel, and humans can always approve with `reins approve`.

// messenger posts and updates the approval messages of the steps.
type messenger struct {
	queue        []messengerNote
	closed, done bool
	// posted holds each step's messages (channel and timestamp).
	posted map[int][]remediation.ApprovalMessage
}

// messengerNote is a post (update nil) or an update of step's messages.
type messengerNote struct {
	step   int
	post   remediation.ApprovalRequest
	update *remediation.UpdateApprovalInput
}

func (r *run) startMessenger(ctx workflow.Context) {
	r.msgs = &messenger{posted: map[int][]remediation.ApprovalMessage{}}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, r.messengerLoop)
}

func (r *run) messengerLoop(ctx workflow.Context) {
	m := r.msgs
	logger := workflow.GetLogger(ctx)
	for {
		_ = workflow.Await(ctx, func() bool { return (len(m.queue) > 0 && !r.acting) || m.closed })
		if len(m.queue) == 0 {
			m.done = true
			return
		}
		n := m.queue[0]
		m.queue = m.queue[1:]
		if n.update == nil {
			var res remediation.NotifyApproversResult
			err := workflow.ExecuteActivity(withActivity(ctx, notifyOptions("ask "+n.post.Group+" to co-sign step "+strconv.Itoa(n.step))),
				remediation.ActivityNotifyApprovers, n.post).Get(ctx, &res)
			d := remediation.AuditNotifyData{AuditStep: r.stepRef(n.step), Group: n.post.Group, Escalated: n.post.Escalated, Messages: res.Messages, Note: res.Note}
			if err != nil {
				d.Error = errorMessage(err)
				logger.Warn("approval request not posted; approvers can still use reins approve", "remediation", r.status.ID, "step", n.step, "error", err)
			}
			m.posted[n.step] = append(m.posted[n.step], res.Messages...)
			r.record(ctx, remediation.AuditApprovalNotified, d)
			continue
		}
		if len(m.posted[n.step]) == 0 {
			continue
		}
		in := *n.update
		in.Messages = m.posted[n.step]
		if err := workflow.ExecuteActivity(withActivity(ctx, notifyOptions("update the approval message of step "+strconv.Itoa(n.step))),
			remediation.ActivityUpdateApprovalMessage, in).Get(ctx, nil); err != nil {
			logger.Warn("approval message not updated", "remediation", r.status.ID, "step", n.step, "error", err)
		}
	}
}

// flushMessages waits until every post and update is done. After it,
// nothing may be queued.
func (r *run) flushMessages(ctx workflow.Context) {
	if r.msgs == nil {
		return
	}
	r.msgs.closed = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return r.msgs.done })
}

// askApprovers queues the co-signature request of step i to group.
func (r *run) askApprovers(req remediation.ApprovalRequest) {
	if r.msgs == nil || r.msgs.closed {
		return
	}
	r.msgs.queue = append(r.msgs.queue, messengerNote{step: req.Index, post: req})
}

// updateApprovers queues an update of step i's messages: the votes so far,
// whether the step is decided, and what became of it.
func (r *run) updateApprovers(i int, req remediation.ApprovalRequest, decided bool, outcome string) {
	if r.msgs == nil || r.msgs.closed {
		return
	}
	in := &remediation.UpdateApprovalInput{Request: req, Decided: decided, Outcome: outcome}
	for _, a := range r.status.Steps[i].Approvals {
		in.Votes = append(in.Votes, remediation.ApprovalVote{Approver: a.Approver, Verdict: a.Verdict, At: a.At, Counted: a.Counted, Reason: a.Reason})
	}
	r.msgs.queue = append(r.msgs.queue, messengerNote{step: i, update: in})
}

// notifyOptions: posting retries briefly (the activity itself waits out
// Slack's rate limits); a step never fails because a message did not go out.
func notifyOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    15 * time.Second,
			MaximumAttempts:    5,
		},
		Summary: summary,
	}
}
