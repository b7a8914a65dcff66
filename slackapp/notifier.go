package slackapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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

// MetadataEventType is the event type of the metadata every co-signature
// request carries (chat.postMessage's metadata): its payload holds the
// request's key (PostOptions.Key), remediation and step, so that a retry
// finds the message an earlier attempt posted.
const MetadataEventType = "reins_cosign_request"

// Bounds of the search for an earlier attempt's message: pages of the
// channel's history, and messages per page.
const (
	findPages    = 5
	findPageSize = 200
)

// PostOptions says how Post posts a request.
type PostOptions struct {
	// WorkflowURL links the message to the remediation in the Temporal UI.
	// "": no link.
	WorkflowURL string
	// Key identifies the request across the attempts that post it; the
	// message carries it in its metadata. "": none.
	Key string
	// FindSince, with a Key, makes Post first look in the channel for a
	// message carrying Key posted since then (one an earlier attempt posted
	// before its answer was lost) and return it instead of posting again.
	// Zero: post at once, as a first attempt does.
	FindSince time.Time
}

// Posted is the message of a request: posted, or found.
type Posted struct {
	Message remediation.ApprovalMessage
	// Found: an earlier attempt had posted the message; nothing was posted.
	Found bool
	// FindErr is why the channel's history could not be searched (the bot
	// needs channels:history, or groups:history in a private channel). Post
	// posted anyway: approvers may see the request twice, and both
	// messages' buttons work.
	FindErr error
}

// Post posts req's co-signature request to its group's channel; see
// PostOptions for how a retry avoids posting it twice.
func (n *Notifier) Post(ctx context.Context, req remediation.ApprovalRequest, opts PostOptions) (Posted, error) {
	channel, err := n.Channel(req.Group)
	if err != nil {
		return Posted{}, err
	}
	msg, err := RequestMessage(req, n.options(req.Group, opts.WorkflowURL))
	if err != nil {
		return Posted{}, err
	}
	var posted Posted
	if opts.Key != "" && !opts.FindSince.IsZero() {
		m, found, err := n.find(ctx, channel, opts.Key, opts.FindSince)
		if found {
			return Posted{Message: m, Found: true}, nil
		}
		posted.FindErr = err
	}
	send := []slack.MsgOption{slack.MsgOptionText(msg.Text, false), slack.MsgOptionBlocks(msg.Blocks...), slack.MsgOptionDisableLinkUnfurl()}
	if opts.Key != "" {
		send = append(send, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: MetadataEventType, EventPayload: map[string]any{
			"key": opts.Key, "remediation": req.Remediation, "step": req.Index, "escalated": req.Escalated,
		}}))
	}
	var ch, ts string
	err = n.call(ctx, func() error {
		var err error
		ch, ts, err = n.api.PostMessageContext(ctx, channel, send...)
		return err
	})
	if err != nil {
		return Posted{}, fmt.Errorf("slack chat.postMessage to %s: %w", channel, err)
	}
	posted.Message = remediation.ApprovalMessage{Channel: ch, TS: ts}
	return posted, nil
}

// find looks in channel's history since since for a message whose metadata
// carries key, reading at most findPages pages.
func (n *Notifier) find(ctx context.Context, channel, key string, since time.Time) (remediation.ApprovalMessage, bool, error) {
	params := &slack.GetConversationHistoryParameters{
		ChannelID:          channel,
		Oldest:             strconv.FormatInt(since.Unix(), 10) + ".000000",
		Limit:              findPageSize,
		IncludeAllMetadata: true,
	}
	for range findPages {
		var page *slack.GetConversationHistoryResponse
		err := n.call(ctx, func() error {
			var err error
			page, err = n.api.GetConversationHistoryContext(ctx, params)
			return err
		})
		if err != nil {
			return remediation.ApprovalMessage{}, false, fmt.Errorf("slack conversations.history of %s: %w", channel, err)
		}
		for _, m := range page.Messages {
			if m.Metadata.EventType == MetadataEventType && m.Metadata.EventPayload["key"] == key {
				return remediation.ApprovalMessage{Channel: channel, TS: m.Timestamp}, true, nil
			}
		}
		if !page.HasMore || page.ResponseMetaData.NextCursor == "" {
			break
		}
		params.Cursor = page.ResponseMetaData.NextCursor
	}
	return remediation.ApprovalMessage{}, false, nil
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
