package slackapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/slack-go/slack"

	"github.com/reins-dev/reins/remediation"
)

// Group is where a reins approver group lives in Slack.
type Group struct {
	// Usergroup is the Slack user group (S…) whose members are the group's
	// approvers; messages mention it.
	Usergroup string
	// Channel is where the group's co-signature requests are posted ("":
	// the default channel).
	Channel string
}

// DefaultRateLimitWaits is how many times a call waits out a 429 before it
// gives up, unless the context ends first.
const DefaultRateLimitWaits = 5

// NotifierOptions configures NewNotifier.
type NotifierOptions struct {
	// Groups maps reins approver groups to Slack.
	Groups map[string]Group
	// DefaultChannel receives the requests of groups without a channel.
	DefaultChannel string
	// RateLimitWaits bounds the waits on 429 per call. Default
	// DefaultRateLimitWaits.
	RateLimitWaits int
}

// Notifier posts and updates co-signature requests. Safe for concurrent use.
type Notifier struct {
	api  *slack.Client
	opts NotifierOptions
}

// NewNotifier returns a Notifier that calls Slack's Web API through api (a
// bot token's client).
func NewNotifier(api *slack.Client, opts NotifierOptions) (*Notifier, error) {
	if api == nil {
		return nil, errors.New("slack notifier: no Slack client (set slack.bot_token_file or REINS_SLACK_BOT_TOKEN)")
	}
	if opts.RateLimitWaits <= 0 {
		opts.RateLimitWaits = DefaultRateLimitWaits
	}
	return &Notifier{api: api, opts: opts}, nil
}

// ErrNoChannel: a group has no channel and there is no default channel.
var ErrNoChannel = errors.New("no Slack channel for approver group")

// Channel is where group's requests are posted.
func (n *Notifier) Channel(group string) (string, error) {
	if g, ok := n.opts.Groups[group]; ok && g.Channel != "" {
		return g.Channel, nil
	}
	if n.opts.DefaultChannel != "" {
		return n.opts.DefaultChannel, nil
	}
	return "", fmt.Errorf("%w %q: set slack.groups.%s.channel or slack.default_channel", ErrNoChannel, group, group)
}

// options returns how the message of group is rendered.
func (n *Notifier) options(group, workflowURL string) MessageOptions {
	return MessageOptions{Usergroup: n.opts.Groups[group].Usergroup, WorkflowURL: workflowURL}
}

// Post posts req's co-signature request to its group's channel.
func (n *Notifier) Post(ctx context.Context, req remediation.ApprovalRequest, workflowURL string) (remediation.ApprovalMessage, error) {
	channel, err := n.Channel(req.Group)
	if err != nil {
		return remediation.ApprovalMessage{}, err
	}
	msg, err := RequestMessage(req, n.options(req.Group, workflowURL))
	if err != nil {
		return remediation.ApprovalMessage{}, err
	}
	var ch, ts string
	err = n.call(ctx, func() error {
		var err error
		ch, ts, err = n.api.PostMessageContext(ctx, channel,
			slack.MsgOptionText(msg.Text, false), slack.MsgOptionBlocks(msg.Blocks...), slack.MsgOptionDisableLinkUnfurl())
		return err
	})
	if err != nil {
		return remediation.ApprovalMessage{}, fmt.Errorf("slack chat.postMessage to %s: %w", channel, err)
	}
	return remediation.ApprovalMessage{Channel: ch, TS: ts}, nil
}

// Update rewrites every message of in (see UpdatedMessage). A message that
// cannot be rewritten does not stop the others; the errors are joined.
func (n *Notifier) Update(ctx context.Context, in remediation.UpdateApprovalInput, workflowURL string) error {
	msg, err := UpdatedMessage(in, n.options(in.Request.Group, workflowURL))
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range in.Messages {
		err := n.call(ctx, func() error {
			_, _, _, err := n.api.UpdateMessageContext(ctx, m.Channel, m.TS,
				slack.MsgOptionText(msg.Text, false), slack.MsgOptionBlocks(msg.Blocks...))
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("slack chat.update of %s/%s: %w", m.Channel, m.TS, err))
		}
	}
	return errors.Join(errs...)
}

// call runs fn, waiting out rate limits (429) as Slack asks, at most
// RateLimitWaits times and never past ctx.
func (n *Notifier) call(ctx context.Context, fn func() error) error {
	return withRateLimit(ctx, n.opts.RateLimitWaits, fn)
}

// withRateLimit runs fn and, while it is rate limited, waits Retry-After
// (1s when Slack gave none) and runs it again, at most waits times.
func withRateLimit(ctx context.Context, waits int, fn func() error) error {
	for i := 0; ; i++ {
		err := fn()
		wait, limited := rateLimited(err)
		if !limited || i >= waits {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (stopped waiting out the rate limit: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// rateLimited reports whether err is Slack's 429, and how long to wait.
func rateLimited(err error) (time.Duration, bool) {
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return max(rl.RetryAfter, 100*time.Millisecond), true
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok && sc.Code == http.StatusTooManyRequests {
		return time.Second, true
	}
	return 0, false
}

// permanentCodes are Slack errors that retrying cannot fix: the channel,
// the token or the message is wrong, and a human must change config.
var permanentCodes = []string{
	"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
	"account_inactive", "token_revoked", "token_expired", "missing_scope", "no_permission",
	"restricted_action", "ekm_access_denied", "invalid_blocks", "invalid_blocks_format",
	"msg_too_long", "too_many_attachments", "message_not_found", "cant_update_message",
	"edit_window_closed", "user_not_found", "no_such_subteam", "team_access_not_granted",
}

// Permanent reports whether err is a Slack error that retrying cannot fix
// (a wrong channel, token or scope), and its Slack error code; or one of
// reins' own configuration errors (ErrNoChannel, ErrBadButtonValue).
func Permanent(err error) (string, bool) {
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok && slices.Contains(permanentCodes, se.Err) {
		return se.Err, true
	}
	switch {
	case errors.Is(err, ErrNoChannel):
		return "no_channel", true
	case errors.Is(err, ErrBadButtonValue):
		return "bad_button_value", true
	}
	return "", false
}
