package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/remediation"
)

// AuditEventRefused: an event the intake could not read (or an
// unauthenticated post), or whose trigger's playbook did not make a valid
// plan; nothing started.
const AuditEventRefused = remediation.AuditGatewayEventRefused

// RecordIntake records an intake outcome in the gateway's chain: it makes
// *Recorder an intake.Recorder.
func (r *Recorder) RecordIntake(ctx context.Context, o intake.Outcome) error {
	return r.Record(ctx, IntakeAuditType(o.Result), o)
}

var _ intake.Recorder = (*Recorder)(nil)

// IntakeAuditType is the audit record type of an intake result.
func IntakeAuditType(r intake.Result) string {
	switch r {
	case intake.ResultStarted:
		return AuditEventStarted
	case intake.ResultDuplicate:
		return AuditEventDuplicate
	case intake.ResultResolved, intake.ResultResolvedIdle:
		return AuditEventResolved
	case intake.ResultUnmatched:
		return AuditEventUnmatched
	}
	return AuditEventRefused
}

// Paths of the intake's doors.
const (
	PathAlertmanager = "/v1/events/alertmanager"
	PathCloudEvents  = "/v1/events/cloudevents"
)

// IntakeOptions configure the intake's HTTP doors. The zero value of each
// field but Dispatcher and TokenSHA256 is its default.
type IntakeOptions struct {
	// Dispatcher handles the events. Required.
	Dispatcher *intake.Dispatcher
	// TokenSHA256 are the SHA-256 sums (32 bytes each) of the bearer tokens
	// the doors accept: Alertmanager sends one with
	// http_config.authorization.credentials. At least one.
	TokenSHA256 [][]byte
	// Queue, when set, is queued delivery (intake.http_delivery: queue):
	// the events the triggers take are put on the intake's JetStream
	// stream, whose consumer starts their remediations, and the answer
	// waits only for JetStream's PubAck. Default nil: direct delivery, the
	// answer waits for Temporal.
	Queue *intake.Queue
	// Limits bound each request.
	Limits intake.Limits
	// Concurrency bounds the events of one post handled at once. Default 8.
	Concurrency int
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Intake serves the event doors:
//
//	POST /v1/events/alertmanager   an Alertmanager webhook post (payload version 4)
//	POST /v1/events/cloudevents    one CloudEvent, binary or structured mode
//
// A 202 answer means every event of the request was handled: its
// remediation started or joined (Temporal accepted it), its resolution was
// signalled, or it was recorded as unmatched or refused; the body lists
// what happened to each. With queued delivery (IntakeOptions.Queue), an
// event a trigger takes is handled once JetStream stored it: its result is
// "queued" (or "duplicate": identical to one stored within the stream's
// duplicate window), with the ID of the remediation it starts or joins. A
// 503 means some were not: send the request again, which is safe (a
// repeated start joins its remediation, a repeated message is stored
// once). A 4xx means the request itself is wrong and sending it again will
// not help; nothing of it was started or queued.
type Intake struct {
	opts IntakeOptions
	log  *slog.Logger
	// unauthenticated bounds the records of unauthenticated requests.
	unauthenticated *RefusalBudget

	// Records of starts, joins and resolutions are written after the
	// answer, by one goroutine, so that the audit sink never delays it.
	mu      sync.Mutex
	closed  bool
	pending chan intake.Outcome
	done    chan struct{}
}

// maxBearerBytes bounds a presented intake token.
const maxBearerBytes = 512

// NewIntake builds the doors; Close stops them.
func NewIntake(opts IntakeOptions) (*Intake, error) {
	if opts.Dispatcher == nil {
		return nil, errors.New("gateway intake: no dispatcher (intake.triggers)")
	}
	if len(opts.TokenSHA256) == 0 {
		return nil, errors.New("gateway intake: no token configured (intake.tokens or intake.token_file): the event doors are never served unauthenticated")
	}
	for i, h := range opts.TokenSHA256 {
		if len(h) != sha256.Size {
			return nil, fmt.Errorf("gateway intake: token %d is not a SHA-256 sum (%d bytes, want %d)", i, len(h), sha256.Size)
		}
	}
	opts.Limits = opts.Limits.WithDefaults()
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	in := &Intake{opts: opts, log: log, unauthenticated: NewRefusalBudget(), pending: make(chan intake.Outcome, 4096), done: make(chan struct{})}
	go in.recordPending()
	return in, nil
}

// Mount mounts the doors on s.
func (in *Intake) Mount(s *Server) {
	s.Handle("POST "+PathAlertmanager, http.HandlerFunc(in.serveAlertmanager))
	s.Handle("POST "+PathCloudEvents, http.HandlerFunc(in.serveCloudEvent))
}

// Close writes the records still pending; call it once the server no
// longer serves the doors.
func (in *Intake) Close() {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		close(in.pending)
	}
	in.mu.Unlock()
	<-in.done
}

func (in *Intake) recordPending() {
	defer close(in.done)
	for o := range in.pending {
		in.opts.Dispatcher.Record(context.Background(), o)
	}
}

// record queues o's record, or writes it now when the queue is full or closed.
func (in *Intake) record(ctx context.Context, o intake.Outcome) {
	in.mu.Lock()
	queued := false
	if !in.closed {
		select {
		case in.pending <- o:
			queued = true
		default:
		}
	}
	in.mu.Unlock()
	if !queued {
		in.opts.Dispatcher.Record(ctx, o)
	}
}

func (in *Intake) serveAlertmanager(w http.ResponseWriter, r *http.Request) {
	if !in.authenticate(w, r, intake.KindAlertmanager) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, in.opts.Limits.MaxBodyBytes)
	events, err := intake.DecodeAlertmanager(r.Body, intake.ViaHTTP, in.opts.Limits)
	if err != nil {
		in.refuse(w, r, intake.KindAlertmanager, err)
		return
	}
	in.deliver(w, r, intake.KindAlertmanager, events)
}

func (in *Intake) serveCloudEvent(w http.ResponseWriter, r *http.Request) {
	if !in.authenticate(w, r, intake.KindCloudEvent) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, in.opts.Limits.MaxBodyBytes)
	ev, err := intake.DecodeCloudEvent(r, in.opts.Limits)
	if err != nil {
		in.refuse(w, r, intake.KindCloudEvent, err)
		return
	}
	in.deliver(w, r, intake.KindCloudEvent, []intake.Event{ev})
}

// authenticate accepts a request with one of the configured bearer tokens;
// it answers and records any other.
func (in *Intake) authenticate(w http.ResponseWriter, r *http.Request, kind intake.Kind) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && len(tok) <= maxBearerBytes {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		match := 0
		for _, h := range in.opts.TokenSHA256 {
			match |= subtle.ConstantTimeCompare(sum[:], h)
		}
		if match == 1 {
			return true
		}
	}
	// Recorded within a budget: a flood of them must not fill the audit trail.
	if ok, suppressed := in.unauthenticated.Take(); ok {
		why := "unauthenticated: no bearer token, or not an intake token"
		if suppressed > 0 {
			why += fmt.Sprintf(" (and %d more since the last one recorded)", suppressed)
		}
		if _, err := in.opts.Dispatcher.Refuse(r.Context(), kind, intake.ViaHTTP, errors.New(why)); err != nil {
			in.log.Error("gateway intake: unauthenticated request not recorded", "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="reins intake"`)
	WriteProblem(w, Problem{Status: http.StatusUnauthorized, Title: "Unauthenticated", Instance: r.URL.Path,
		Detail: "send Authorization: Bearer <an intake token> (intake.tokens); Alertmanager sends it with http_config.authorization.credentials"})
	return false
}

// refuse answers and records a request whose events cannot be read.
func (in *Intake) refuse(w http.ResponseWriter, r *http.Request, kind intake.Kind, err error) {
	if _, rerr := in.opts.Dispatcher.Refuse(r.Context(), kind, intake.ViaHTTP, err); rerr != nil {
		in.log.Error("gateway intake: refused request not recorded", "path", r.URL.Path, "error", rerr)
		WriteProblem(w, Problem{Status: http.StatusServiceUnavailable, Title: "Not recorded", Instance: r.URL.Path, RetryAfter: 5,
			Detail: "the request is invalid, but the audit sink did not take its record; send it again later, or fix it: " + err.Error()})
		return
	}
	var tooLarge *intake.TooLargeError
	var invalid *intake.InvalidError
	switch {
	case errors.As(err, &tooLarge):
		WriteProblem(w, Problem{Status: http.StatusRequestEntityTooLarge, Instance: r.URL.Path, Detail: err.Error()})
	case errors.Is(err, intake.ErrUnsupported):
		WriteProblem(w, Problem{Status: http.StatusUnsupportedMediaType, Instance: r.URL.Path, Detail: err.Error()})
	case errors.As(err, &invalid):
		p := Problem{Status: http.StatusBadRequest, Title: "Invalid event", Instance: r.URL.Path, Detail: err.Error()}
		for _, fe := range invalid.Errors {
			p.Errors = append(p.Errors, FieldProblem{Field: fe.Field, Detail: fe.Message})
		}
		WriteProblem(w, p)
	default:
		WriteProblem(w, Problem{Status: http.StatusBadRequest, Instance: r.URL.Path, Detail: err.Error()})
	}
}

// IntakeResponse is the body of a 202 answer.
type IntakeResponse struct {
	Events []IntakeEventResult `json:"events"`
}

// IntakeEventResult is what happened to one event.
type IntakeEventResult struct {
	Result      intake.Result `json:"result"`
	Fingerprint string        `json:"fingerprint"`
	Trigger     string        `json:"trigger,omitempty"`
	// Remediation is the workflow ID of the remediation started or joined,
	// or, queued, of the one the event starts or joins.
	Remediation string `json:"remediation,omitempty"`
	// Reason says why nothing started; Errors name the bad fields.
	Reason string         `json:"reason,omitempty"`
	Errors []FieldProblem `json:"errors,omitempty"`
}

// deliver dispatches the events, or queues them.
func (in *Intake) deliver(w http.ResponseWriter, r *http.Request, kind intake.Kind, events []intake.Event) {
	if in.opts.Queue != nil {
		in.enqueue(w, r, kind, events)
		return
	}
	in.dispatch(w, r, events)
}

// dispatch handles every event, answers, then has the records written.
func (in *Intake) dispatch(w http.ResponseWriter, r *http.Request, events []intake.Event) {
	outcomes := make([]intake.Outcome, len(events))
	errs := make([]error, len(events))
	if len(events) == 1 {
		outcomes[0], errs[0] = in.opts.Dispatcher.Dispatch(r.Context(), events[0])
	} else {
		var wg sync.WaitGroup
		slots := make(chan struct{}, in.opts.Concurrency)
		for i, ev := range events {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				outcomes[i], errs[i] = in.opts.Dispatcher.Dispatch(r.Context(), ev)
			})
		}
		wg.Wait()
	}
	in.answer(w, r, outcomes, errs)
}

// enqueue admits every event, queues those a trigger takes, answers once
// JetStream stored them, and only then records the unmatched and refused
// ones (not queued): a request answered 503 because the publish failed has
// recorded nothing, so that sending it again records each event once.
func (in *Intake) enqueue(w http.ResponseWriter, r *http.Request, kind intake.Kind, events []intake.Event) {
	q := in.opts.Queue
	// Encoding first: a request whose events cannot all be queued is
	// refused whole, before anything of it is recorded or queued.
	msgs, err := q.Encode(events)
	if err != nil {
		in.refuse(w, r, kind, err)
		return
	}
	outcomes := make([]intake.Outcome, len(events))
	errs := make([]error, len(events))
	var queued []int
	for i, ev := range events {
		outcomes[i] = in.opts.Dispatcher.Admit(ev)
		if outcomes[i].Result == intake.ResultQueued {
			queued = append(queued, i)
		}
	}
	if len(queued) > 0 {
		batch := make([]*nats.Msg, len(queued))
		for j, i := range queued {
			batch[j] = msgs[i]
		}
		duplicate, err := q.Publish(r.Context(), batch)
		if err != nil {
			// Nothing is recorded: the request is to be sent again whole.
			for i := range errs {
				errs[i] = err
			}
			in.answer(w, r, outcomes, errs)
			return
		}
		for j, i := range queued {
			if duplicate[j] {
				outcomes[i].Result = intake.ResultDuplicate
				outcomes[i].Reason = "identical to an event already queued on " + q.Subject() + " (JetStream kept the first)"
			}
		}
	}
	for i := range outcomes {
		if outcomes[i].Result != intake.ResultQueued && outcomes[i].Result != intake.ResultDuplicate {
			errs[i] = in.opts.Dispatcher.RecordNow(r.Context(), &outcomes[i])
		}
	}
	in.answer(w, r, outcomes, errs)
}

// answer answers 202 with every outcome, or 503 when an event was not
// handled; then it has the records of the outcomes that need one written
// (starts, joins, resolutions; queued events are recorded by the consumer).
func (in *Intake) answer(w http.ResponseWriter, r *http.Request, outcomes []intake.Outcome, errs []error) {
	failed := 0
	var firstErr error
	resp := IntakeResponse{Events: make([]IntakeEventResult, 0, len(outcomes))}
	for i, o := range outcomes {
		if errs[i] != nil {
			failed++
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		res := IntakeEventResult{Result: o.Result, Fingerprint: o.Event.Fingerprint, Trigger: o.Trigger, Remediation: o.Remediation, Reason: o.Reason}
		for _, fe := range o.Errors {
			res.Errors = append(res.Errors, FieldProblem{Field: fe.Field, Detail: fe.Message})
		}
		resp.Events = append(resp.Events, res)
	}
	if failed > 0 {
		in.log.Warn("gateway intake: events not handled; the sender is told to send them again", "path", r.URL.Path, "failed", failed, "of", len(outcomes), "error", firstErr)
		WriteProblem(w, Problem{Status: http.StatusServiceUnavailable, Title: "Not handled", Instance: r.URL.Path, RetryAfter: 5,
			Detail: fmt.Sprintf("%d of %d events were not handled (%v); send the request again: the events already handled join their remediations", failed, len(outcomes), firstErr)})
	} else {
		body, err := json.Marshal(resp)
		if err != nil {
			WriteProblem(w, Problem{Status: http.StatusInternalServerError, Instance: r.URL.Path, Detail: err.Error()})
			return
		}
		body = append(body, '\n')
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
	}
	for i, o := range outcomes {
		if errs[i] == nil && o.Result != intake.ResultQueued {
			in.record(context.WithoutCancel(r.Context()), o)
		}
	}
}
