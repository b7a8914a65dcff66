package slackapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// envelopeTTL is how long a Socket Mode envelope ID is remembered: Slack
// redelivers an unacknowledged envelope within seconds.
const envelopeTTL = 10 * time.Minute

// SocketOptions configures NewSocketRunner.
type SocketOptions struct {
	// Dispatch receives every click on reins' buttons. It must return
	// quickly (hand the work to the background), like the HTTP endpoint.
	// Required.
	Dispatch func(Interaction)
	// Rejected is told about every interactive payload that is not a click
	// on reins' buttons, with the reason. Default: logged only.
	Rejected func(reason string)
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// SocketRunner receives interactions over Slack's Socket Mode: a WebSocket
// the app opens with its app-level token, so that no public endpoint is
// needed. Each envelope is acknowledged at once, then parsed exactly like
// the HTTP endpoint's payload and handed to Dispatch.
type SocketRunner struct {
	client *socketmode.Client
	opts   SocketOptions
	seen   *seenSet
}

// NewSocketRunner returns a runner on api, a client built with the bot
// token and slack.OptionAppLevelToken (an xapp- token with
// connections:write).
func NewSocketRunner(api *slack.Client, opts SocketOptions) (*SocketRunner, error) {
	if api == nil {
		return nil, errors.New("slack socket mode: no Slack client")
	}
	if opts.Dispatch == nil {
		return nil, errors.New("slack socket mode: no Dispatch function")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &SocketRunner{client: socketmode.New(api), opts: opts, seen: newSeenSet(DefaultMaxReplays)}, nil
}

// Run connects and serves until ctx ends (then it returns nil) or the
// connection fails for good (a rejected app token).
func (s *SocketRunner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.client.RunContext(ctx) }()
	log := s.opts.Logger
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack socket mode: %w (check slack.app_token_file or REINS_SLACK_APP_TOKEN: an xapp- token with connections:write)", err)
		case evt := <-s.client.Events:
			switch evt.Type {
			case socketmode.EventTypeInteractive:
				s.interactive(ctx, evt)
			case socketmode.EventTypeEventsAPI, socketmode.EventTypeSlashCommand:
				// Not reins' business, but Slack redelivers what is not acknowledged.
				if evt.Request != nil {
					s.ack(ctx, evt.Request.EnvelopeID)
				}
			case socketmode.EventTypeConnected:
				log.Info("slack socket mode connected")
			case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
				log.Warn("slack socket mode connection trouble; reconnecting", "event", string(evt.Type), "detail", fmt.Sprint(evt.Data))
			case socketmode.EventTypeErrorBadMessage:
				s.reject("a Socket Mode message that could not be decoded")
			case socketmode.EventTypeInvalidAuth:
				log.Error("slack socket mode: the app token was refused")
			}
		}
	}
}

// interactive acknowledges an interactive envelope, then hands a click on
// reins' buttons to Dispatch.
func (s *SocketRunner) interactive(ctx context.Context, evt socketmode.Event) {
	req := evt.Request
	if req == nil || req.EnvelopeID == "" {
		s.reject("an interactive Socket Mode event without an envelope")
		return
	}
	s.ack(ctx, req.EnvelopeID)
	now := time.Now()
	switch s.seen.add(req.EnvelopeID, now.Add(envelopeTTL), now) {
	case seenBefore:
		s.opts.Logger.Info("slack socket mode: envelope delivered again; already handled", "envelope", req.EnvelopeID)
		return
	case seenFull:
		s.reject("too many Socket Mode envelopes to remember; refused")
		return
	}
	in, err := ParsePayload(req.Payload)
	if err != nil {
		s.reject(err.Error())
		return
	}
	s.opts.Dispatch(in)
}

func (s *SocketRunner) ack(ctx context.Context, envelope string) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.client.AckCtx(actx, envelope, nil); err != nil {
		s.opts.Logger.Warn("slack socket mode: acknowledgement not sent", "envelope", envelope, "error", err)
	}
}

func (s *SocketRunner) reject(reason string) {
	s.opts.Logger.Warn("slack socket mode: interaction refused", "reason", reason)
	if s.opts.Rejected != nil {
		s.opts.Rejected(reason)
	}
}
