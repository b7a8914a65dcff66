package activities

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/slackapp"
)

// SlackNotifier posts a step's co-signature request and keeps it current;
// *slackapp.Notifier is the real one.
type SlackNotifier interface {
	Post(ctx context.Context, req remediation.ApprovalRequest, opts slackapp.PostOptions) (slackapp.Posted, error)
	Update(ctx context.Context, in remediation.UpdateApprovalInput, workflowURL string) error
}

var _ SlackNotifier = (*slackapp.Notifier)(nil)

// ErrSlackRejected is the type of a non-retryable Slack failure: Slack
// refused the call for a reason retrying cannot fix (a wrong channel, a bot
// not in the channel, a bad token or scope). Someone must fix the config.
const ErrSlackRejected = "SlackRejected"

// Slack asks humans to co-sign in Slack.
type Slack struct {
	// Notifier posts and updates the messages. Nil: Slack is not
	// configured; nothing is posted and approvers use `reins approve`.
	Notifier SlackNotifier
	// TemporalUI is the Temporal UI's base URL, for the message's link to the
	// remediation. "": no link.
	TemporalUI string
}

// NotifyApprovers posts req's co-signature request to its group's channel.
func (s *Slack) NotifyApprovers(ctx context.Context, req remediation.ApprovalRequest) (remediation.NotifyApproversResult, error) {
	if s.Notifier == nil {
		return remediation.NotifyApproversResult{Note: fmt.Sprintf(
			"Slack is not configured: co-sign with `reins approve %s --step %d` (or refuse with `reins deny %s --step %d`)",
			req.Remediation, req.Index, req.Remediation, req.Index)}, nil
	}
	// A retry first looks for the message an earlier attempt posted (its
	// answer lost, or the attempt timed out after Slack took it), so that
	// approvers see one request with live buttons, not two.
	info := activity.GetInfo(ctx)
	opts := slackapp.PostOptions{WorkflowURL: s.workflowURL(ctx), Key: info.WorkflowExecution.RunID + "/" + info.ActivityID}
	if info.Attempt > 1 {
		opts.FindSince = info.ScheduledTime.Add(-postClockSkew)
	}
	posted, err := s.Notifier.Post(ctx, req, opts)
	if err != nil {
		return remediation.NotifyApproversResult{}, slackError(fmt.Sprintf("post the co-signature request of step %d to group %s", req.Index, req.Group), err)
	}
	logger := activity.GetLogger(ctx)
	msg := posted.Message
	if posted.Found {
		logger.Info("co-signature request found, posted by an earlier attempt; not posted again", "remediation", req.Remediation, "step", req.Index,
			"group", req.Group, "attempt", info.Attempt, "channel", msg.Channel, "ts", msg.TS)
	} else {
		if posted.FindErr != nil {
			logger.Warn("could not look for the message of an earlier attempt, so the request may show twice (give the bot channels:history, or groups:history for a private channel)",
				"remediation", req.Remediation, "step", req.Index, "attempt", info.Attempt, "error", posted.FindErr)
		}
		logger.Info("co-signature request posted", "remediation", req.Remediation, "step", req.Index,
			"group", req.Group, "escalated", req.Escalated, "channel", msg.Channel, "ts", msg.TS)
	}
	return remediation.NotifyApproversResult{Messages: []remediation.ApprovalMessage{msg}}, nil
}

// postClockSkew widens the search for an earlier attempt's message, for
// clocks of the Temporal server and Slack that disagree.
const postClockSkew = time.Minute

// UpdateApprovalMessage rewrites in's messages: votes, buttons gone once
// decided, outcome. Without Slack it does nothing.
func (s *Slack) UpdateApprovalMessage(ctx context.Context, in remediation.UpdateApprovalInput) error {
	if s.Notifier == nil || len(in.Messages) == 0 {
		return nil
	}
	if err := s.Notifier.Update(ctx, in, s.workflowURL(ctx)); err != nil {
		return slackError(fmt.Sprintf("update the co-signature request of step %d", in.Request.Index), err)
	}
	return nil
}

// workflowURL links to the running workflow in the Temporal UI.
func (s *Slack) workflowURL(ctx context.Context) string {
	if s.TemporalUI == "" {
		return ""
	}
	info := activity.GetInfo(ctx)
	return strings.TrimRight(s.TemporalUI, "/") + "/namespaces/" + url.PathEscape(info.Namespace) +
		"/workflows/" + url.PathEscape(info.WorkflowExecution.ID)
}

// slackError makes a Slack failure that retrying cannot fix non-retryable;
// any other (rate limits that outlasted the attempt, 5xx, network) retries.
func slackError(op string, err error) error {
	if code, ok := slackapp.Permanent(err); ok {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: %v (Slack error %s: check slack.groups, slack.default_channel, that the bot is in the channel, and its token and scopes)", op, err, code),
			ErrSlackRejected, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
