package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/slackapp"
)

// SlackInteractionsPattern is where Slack's interactivity requests are
// served: the app's Interactivity Request URL is <gateway>/slack/interactions.
const SlackInteractionsPattern = "POST /slack/interactions"

// SlackDirectory says who a Slack user is and whether they belong to an
// approver group; *slackapp.Directory is the real one.
type SlackDirectory interface {
	Lookup(ctx context.Context, userID string) (remediation.Approver, error)
	InGroup(ctx context.Context, group, userID string) (bool, error)
}

// SlackResponder answers a click, visible only to the user who clicked;
// *slackapp.Responder is the real one.
type SlackResponder interface {
	Ephemeral(ctx context.Context, responseURL, text string) error
}

// Decider decides on a vote; *Desk is the real one.
type Decider interface {
	Decide(ctx context.Context, v Vote) (DeskResult, error)
}

var (
	_ SlackDirectory = (*slackapp.Directory)(nil)
	_ SlackResponder = (*slackapp.Responder)(nil)
	_ Decider        = (*Desk)(nil)
)

// SlackOptions configures NewSlack. Directory, Desk, Responder and Recorder
// are required.
type SlackOptions struct {
	// Verifier checks the signature of HTTP requests. Nil: the HTTP endpoint
	// refuses every request (Socket Mode needs no verifier).
	Verifier  *slackapp.Verifier
	Directory SlackDirectory
	Desk      Decider
	Responder SlackResponder
	// Recorder records every request refused before it reached the desk
	// (gateway.AuditSlackRejected); the desk records the rest.
	Recorder *Recorder
	// TeamID, when set, is the only Slack workspace whose clicks are
	// accepted (slack.team_id).
	TeamID string
	// Timeout bounds the handling of one click (directory, desk, signal).
	// Default 30s.
	Timeout time.Duration
	// MaxInFlight bounds the clicks handled at once; beyond it requests get
	// 503. Default 64.
	MaxInFlight int
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Slack is the Slack door: it verifies Slack's interaction requests,
// acknowledges them at once, and in the background looks the user up,
// hands the vote to the desk and answers a refusal with an ephemeral reply.
// HTTP (ServeHTTP) and Socket Mode (Dispatch, Rejected) share that
// handling. Call Shutdown to drain it.
type Slack struct {
	opts SlackOptions
	log  *slog.Logger
	// ctx is the background work's; cancel ends it (Shutdown).
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	// rejected bounds the rejection records a flood of forged requests can write.
	rejected *RefusalBudget

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewSlack builds the Slack door.
func NewSlack(opts SlackOptions) (*Slack, error) {
	var errs []error
	if opts.Directory == nil {
		errs = append(errs, errors.New("slack door: no directory (slack.bot_token_file or REINS_SLACK_BOT_TOKEN)"))
	}
	if opts.Desk == nil {
		errs = append(errs, errors.New("slack door: no approval desk"))
	}
	if opts.Responder == nil {
		errs = append(errs, errors.New("slack door: no responder for ephemeral replies"))
	}
	if opts.Recorder == nil {
		errs = append(errs, errors.New("slack door: no audit recorder: refused requests are recorded (configure an audit sink)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Slack{
		opts:     opts,
		log:      opts.Logger,
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, opts.MaxInFlight),
		rejected: NewRefusalBudget(),
	}, nil
}

// SlackRejectedData is the data of an AuditSlackRejected record.
type SlackRejectedData struct {
	// Transport is "http" or "socket".
	Transport string `json:"transport"`
	Reason    string `json:"reason"`
	// Remote is the peer's address (HTTP).
	Remote string `json:"remote,omitempty"`
	// Suppressed is how many rejections were not recorded since the
	// previous record (a flood is recorded at a bounded rate).
	Suppressed int64 `json:"suppressed,omitempty"`
}

// ServeHTTP serves Slack's interactivity requests: anything not signed by
// Slack with the app's secret, stale or replayed gets 401 and is recorded;
// a signed click on reins' buttons gets 200 at once and is handled in the
// background.
func (s *Slack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Verifier == nil {
		s.refuse(w, r, http.StatusUnauthorized, "the HTTP endpoint has no signing secret (slack.signing_secret_file or REINS_SLACK_SIGNING_SECRET)")
		return
	}
	body, err := s.opts.Verifier.ReadBody(r)
	if err != nil {
		s.refuse(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	if err := s.opts.Verifier.Verify(r.Header, body); err != nil {
		s.refuse(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	in, err := slackapp.ParseForm(body)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if why := s.otherTeam(in); why != "" {
		s.refuse(w, r, http.StatusForbidden, why)
		return
	}
	if !s.Dispatch(in) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "reins is busy or shutting down: click again in a few seconds", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// refuse answers status, logs and records why (never a secret: the
// verifier's and parser's errors carry none).
func (s *Slack) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	s.log.Warn("slack request refused", "status", status, "reason", reason, "remote", r.RemoteAddr)
	s.record(r.Context(), SlackRejectedData{Transport: "http", Reason: reason, Remote: r.RemoteAddr})
	msg := "unauthorized: not a fresh request signed by Slack for this app"
	switch status {
	case http.StatusBadRequest:
		msg = "not a click on a reins button"
	case http.StatusForbidden:
		msg = "this reins does not accept clicks from this Slack workspace"
	}
	http.Error(w, msg, status)
}

// Rejected records an interaction Socket Mode refused (for
// slackapp.SocketOptions.Rejected).
func (s *Slack) Rejected(reason string) {
	s.record(s.ctx, SlackRejectedData{Transport: "socket", Reason: reason})
}

// record writes an AuditSlackRejected record, at a bounded rate.
func (s *Slack) record(ctx context.Context, d SlackRejectedData) {
	ok, suppressed := s.rejected.Take()
	if !ok {
		return
	}
	d.Suppressed = suppressed
	if len(d.Reason) > 500 {
		d.Reason = strings.ToValidUTF8(d.Reason[:500], "")
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.opts.Recorder.Record(rctx, AuditSlackRejected, d)
}

// Dispatch hands a verified click to the background and reports whether it
// was taken (false: too many in flight, or shutting down). It never blocks.
func (s *Slack) Dispatch(in slackapp.Interaction) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.log.Warn("slack click dropped: too many in flight", "max", s.opts.MaxInFlight, "remediation", in.Button.Remediation, "user", in.UserID)
		return false
	}
	s.wg.Add(1)
	go func() {
		defer func() { <-s.sem; s.wg.Done() }()
		s.handle(in)
	}()
	return true
}

// DispatchSocket is Dispatch for the Socket Mode runner
// (slackapp.SocketOptions.Dispatch), whose envelope is already
// acknowledged: a click that cannot be taken is answered ephemerally.
func (s *Slack) DispatchSocket(in slackapp.Interaction) {
	if why := s.otherTeam(in); why != "" {
		s.log.Warn("slack click refused", "reason", why, "user", in.UserID)
		s.Rejected(why)
		return
	}
	if s.Dispatch(in) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.reply(ctx, in, "reins is busy or shutting down and did not record your click: click again in a few seconds.")
}

// otherTeam says why a click from another Slack workspace than slack.team_id
// is refused, on either transport (a Slack Connect channel shares the
// buttons with other workspaces); "" when it is not refused.
func (s *Slack) otherTeam(in slackapp.Interaction) string {
	if s.opts.TeamID == "" || in.TeamID == s.opts.TeamID {
		return ""
	}
	return fmt.Sprintf("click from Slack workspace %q; only %s is accepted (slack.team_id)", in.TeamID, s.opts.TeamID)
}

// Shutdown stops taking clicks and waits for those in flight, until ctx
// ends; then it cancels them.
func (s *Slack) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("slack door: clicks in flight cancelled at shutdown: %w", ctx.Err())
	}
}

// handle looks the user up, asks the desk, and answers the user.
func (s *Slack) handle(in slackapp.Interaction) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	b := in.Button
	what := fmt.Sprintf("%s of step %d of %s", verdictNoun(in.Verdict), b.Step, b.Remediation)
	log := s.log.With("remediation", b.Remediation, "step", b.Step, "user", in.UserID, "verdict", in.Verdict)

	approver, err := s.opts.Directory.Lookup(ctx, in.UserID)
	if errors.Is(err, slackapp.ErrNotApprover) {
		log.Info("slack click refused", "reason", err)
		_ = s.opts.Recorder.Record(context.WithoutCancel(ctx), AuditApprovalRefused, DeskAuditData{
			Remediation: b.Remediation, Step: b.Step, StepDigest: b.Digest, Verdict: in.Verdict,
			Approver: remediation.Approver{ID: in.UserID, Name: in.UserName, Source: slackapp.SourceSlack},
			Kind:     RefusedNotApprover, Reason: err.Error(),
		})
		s.reply(ctx, in, "Your "+what+" was not counted: "+sentence(err.Error()))
		return
	}
	if err != nil {
		log.Error("slack click not handled: user lookup failed", "error", err)
		s.reply(ctx, in, "reins could not look you up in Slack, so your "+what+" was not recorded. Click again in a minute, or use `reins "+
			string(in.Verdict)+" "+b.Remediation+" --step "+strconv.Itoa(b.Step)+"`.")
		return
	}
	res, err := s.opts.Desk.Decide(ctx, Vote{
		Remediation: b.Remediation,
		Step:        b.Step,
		Digest:      b.Digest,
		Run:         b.Run,
		Approver:    approver,
		InGroup: func(ctx context.Context, group string) (bool, error) {
			return s.opts.Directory.InGroup(ctx, group, in.UserID)
		},
		Verdict: in.Verdict,
	})
	switch {
	case errors.Is(err, slackapp.ErrUnknownGroup):
		log.Error("slack click not handled: approver group not mapped to Slack", "error", err)
		s.reply(ctx, in, "reins cannot check your group in Slack ("+err.Error()+"), so your "+what+" was not recorded. Ask the reins operators, or use the CLI.")
	case err != nil:
		log.Error("slack click not handled", "error", err)
		s.reply(ctx, in, "reins could not record your "+what+" right now. Click again in a minute, or use `reins "+
			string(in.Verdict)+" "+b.Remediation+" --step "+strconv.Itoa(b.Step)+"`.")
	case res.Refusal != "":
		s.reply(ctx, in, "Your "+what+" was not counted: "+sentence(res.Refusal))
	case res.Signalled:
		log.Info("slack click signalled", "approver", approver.ID, "group", res.Group)
		s.reply(ctx, in, "Your "+what+" was sent as "+approver.ID+" (group "+res.Group+"); the message updates once the remediation counts it.")
	}
}

// reply answers the user who clicked; failures are logged (the workflow's
// message update still shows what happened).
func (s *Slack) reply(ctx context.Context, in slackapp.Interaction, text string) {
	// The reply gets its own bound: a slow desk must not swallow it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.opts.Responder.Ephemeral(rctx, in.ResponseURL, text); err != nil {
		s.log.Warn("slack ephemeral reply not sent", "user", in.UserID, "remediation", in.Button.Remediation, "error", err)
	}
}

// sentence ends s with a full stop.
func sentence(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

func verdictNoun(v remediation.Verdict) string {
	if v == remediation.VerdictDeny {
		return "denial"
	}
	return "approval"
}
