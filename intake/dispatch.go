package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// Result is what the intake did with one event.
type Result string

// Results.
const (
	// ResultStarted: a remediation started for the event.
	ResultStarted Result = "started"
	// ResultDuplicate: the event's remediation was already running; the
	// event joined it and started nothing. Queued (Queue), it is also the
	// result of an event identical to one already on the stream within its
	// duplicate window, which JetStream kept once.
	ResultDuplicate Result = "duplicate"
	// ResultQueued: the event is on the intake's JetStream stream (Queue);
	// the consumer starts, joins or signals its remediation.
	ResultQueued Result = "queued"
	// ResultResolved: a resolved event, signalled to its running remediation.
	ResultResolved Result = "resolved"
	// ResultResolvedIdle: a resolved event whose remediation is not running
	// (never started, or already ended); nothing was signalled.
	ResultResolvedIdle Result = "resolved-idle"
	// ResultUnmatched: no trigger takes the event; nothing started.
	ResultUnmatched Result = "unmatched"
	// ResultRefused: the event could not be read, or its trigger's playbook
	// could not be made into a valid plan; nothing started.
	ResultRefused Result = "refused"
)

// Outcome is what the intake did with one event: the data of its audit record.
type Outcome struct {
	Result Result       `json:"result"`
	Event  EventSummary `json:"event"`
	// Trigger is the trigger that matched.
	Trigger string `json:"trigger,omitempty"`
	// Remediation is the remediation's workflow ID, RunID its run.
	Remediation string `json:"remediation,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	// Reason says why nothing started (refused, unmatched); Errors name the
	// bad fields.
	Reason string       `json:"reason,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`

	// recorded: the outcome's audit record is already written.
	recorded bool
}

// Bounds of an outcome's record besides its event (EventSummary).
const (
	maxRecordReasonBytes  = 1 << 10
	maxRecordErrors       = 10
	maxRecordFieldBytes   = 128
	maxRecordMessageBytes = 256
)

// bounded is o as its audit record keeps it: the reason and the field
// errors cut, and at most maxRecordErrors of them, the last saying how
// many more there were. The answer to the sender keeps them all.
func (o Outcome) bounded() Outcome {
	o.Reason, _ = truncate(o.Reason, maxRecordReasonBytes)
	if len(o.Errors) == 0 {
		return o
	}
	errs := make([]FieldError, 0, min(len(o.Errors), maxRecordErrors))
	for i, fe := range o.Errors {
		if i == maxRecordErrors-1 && len(o.Errors) > maxRecordErrors {
			errs = append(errs, FieldError{Field: "errors", Message: fmt.Sprintf("%d more not recorded", len(o.Errors)-i)})
			break
		}
		f, _ := truncate(fe.Field, maxRecordFieldBytes)
		m, _ := truncate(fe.Message, maxRecordMessageBytes)
		errs = append(errs, FieldError{Field: f, Message: m})
	}
	o.Errors = errs
	return o
}

// short is the record of o that says what happened without the event's
// content, for an audit sink that refused the full record (why).
func (o Outcome) short(why error) Outcome {
	reason, _ := truncate(o.Reason, maxRecordMessageBytes)
	detail, _ := truncate(why.Error(), maxRecordMessageBytes)
	if reason != "" {
		reason += "; "
	}
	reason += "the full record of this event was refused by the audit sink as too large (" + detail + "): its labels and errors are left out"
	ev := EventSummary{Kind: o.Event.Kind, Via: o.Event.Via, Status: o.Event.Status, Truncated: true, OmittedLabels: o.Event.OmittedLabels + len(o.Event.Labels)}
	ev.Type, _ = truncate(o.Event.Type, maxRecordFieldBytes)
	ev.Fingerprint, _ = truncate(o.Event.Fingerprint, maxRecordFieldBytes)
	return Outcome{Result: o.Result, Event: ev, Trigger: o.Trigger, Remediation: o.Remediation, RunID: o.RunID, Reason: reason}
}

// RecordError is an outcome whose audit record was not stored.
type RecordError struct {
	Result Result
	Err    error
	// Permanent: the audit sink refuses the record for its size, and even
	// its short form (Outcome without the event's content): storing it
	// again cannot succeed, so the event must not be sent again for it.
	Permanent bool
}

func (e *RecordError) Error() string {
	if e.Permanent {
		return fmt.Sprintf("intake: the record of the %s event can never be stored (the audit sink refuses it for its size): %v", e.Result, e.Err)
	}
	return fmt.Sprintf("intake: record the %s event: %v", e.Result, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Recorder writes one audit record per outcome (the gateway's audit chain).
type Recorder interface {
	RecordIntake(ctx context.Context, o Outcome) error
}

// Temporal starts and signals remediations.
type Temporal interface {
	// Start starts plan's remediation, or joins the running one (joined).
	Start(ctx context.Context, plan remediation.Plan) (id, runID string, joined bool, err error)
	// SignalResolved tells the running remediation id that its incident
	// resolved; running is false when no remediation id is running.
	SignalResolved(ctx context.Context, id string, sig workflows.IncidentResolved) (running bool, err error)
}

// TemporalClient is Temporal through the reins workflow helpers.
type TemporalClient struct {
	Client sdkclient.Client
	// TaskQueue is where remediations run (the workers' task queue).
	TaskQueue string
	// Options are the remediations' workflow options.
	Options workflows.RemediationOptions
}

var _ Temporal = TemporalClient{}

// Start starts plan with workflows.Start (conflict policy "use existing").
func (c TemporalClient) Start(ctx context.Context, plan remediation.Plan) (string, string, bool, error) {
	run, joined, err := workflows.Start(ctx, c.Client, c.TaskQueue, workflows.RemediationInput{Plan: plan, Options: c.Options})
	if err != nil {
		return "", "", false, err
	}
	return run.GetID(), run.GetRunID(), joined, nil
}

// SignalResolved sends workflows.SignalIncidentResolved.
func (c TemporalClient) SignalResolved(ctx context.Context, id string, sig workflows.IncidentResolved) (bool, error) {
	err := c.Client.SignalWorkflow(ctx, id, "", workflows.SignalIncidentResolved, sig)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("signal %s to %s: %w", workflows.SignalIncidentResolved, id, err)
	}
	return true, nil
}

// Dispatcher turns events into remediations: the first trigger that takes
// an event fills its playbook; a firing event starts the plan (or joins its
// running remediation), a resolved one is signalled to it.
type Dispatcher struct {
	triggers *Triggers
	temporal Temporal
	recorder Recorder
	log      *slog.Logger
}

// NewDispatcher dispatches with triggers to temporal, recording every
// outcome with recorder. log may be nil (slog.Default()).
func NewDispatcher(triggers *Triggers, temporal Temporal, recorder Recorder, log *slog.Logger) (*Dispatcher, error) {
	if triggers == nil || triggers.Len() == 0 {
		return nil, errors.New("intake: no triggers configured (intake.triggers or intake.triggers_file)")
	}
	if temporal == nil || recorder == nil {
		return nil, errors.New("intake: the dispatcher needs a Temporal client and an audit recorder")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{triggers: triggers, temporal: temporal, recorder: recorder, log: log}, nil
}

// Dispatch acts on one event. An error means the event was not handled
// (Temporal, or the audit sink of an outcome that is nothing but its
// record, failed): the caller must have it sent again, which is safe, since
// a second start of the same incident joins the first.
//
// An outcome whose only trace is its audit record (unmatched, refused,
// resolved-idle) is recorded before Dispatch returns. The others are
// recorded by Record, which the caller calls once it acknowledged the
// event: the remediation keeps its own audit trail, and its intake record
// need not delay the acknowledgement.
func (d *Dispatcher) Dispatch(ctx context.Context, ev Event) (Outcome, error) {
	o, t, plan, done := d.route(ev)
	if done {
		return o, d.RecordNow(ctx, &o)
	}
	if ev.Status == StatusResolved {
		at := ev.EndsAt
		if at.IsZero() {
			at = time.Now().UTC()
		}
		running, err := d.temporal.SignalResolved(ctx, o.Remediation, workflows.IncidentResolved{
			Source: t.Name(), Fingerprint: ev.Fingerprint, Trigger: t.Name(), At: at})
		if err != nil {
			return o, err
		}
		if !running {
			o.Result, o.Reason = ResultResolvedIdle, "no remediation of this incident is running"
			return o, d.RecordNow(ctx, &o)
		}
		o.Result = ResultResolved
		return o, nil
	}
	id, runID, joined, err := d.temporal.Start(ctx, plan)
	if err != nil {
		var verr *remediation.ValidationError
		if errors.As(err, &verr) {
			o.Result, o.Reason, o.Errors = ResultRefused, err.Error(), verr.Errors
			return o, d.RecordNow(ctx, &o)
		}
		return o, err
	}
	o.Remediation, o.RunID, o.Result = id, runID, ResultStarted
	if joined {
		o.Result = ResultDuplicate
	}
	return o, nil
}

// Admit is Dispatch up to the point where Temporal is needed, for an event
// about to be queued (Queue): an event that no trigger takes, or whose
// playbook cannot be filled, gets the outcome Dispatch gives it (unmatched,
// refused) and must not be queued; any other gets ResultQueued with its
// trigger and remediation ID. Admit records nothing: the caller records an
// unmatched or refused outcome with RecordNow once the request's other
// events are queued (so that a request sent again after a failed publish
// is not recorded twice), and the consumer records what it does with a
// queued one.
func (d *Dispatcher) Admit(ev Event) Outcome {
	o, _, _, done := d.route(ev)
	if !done {
		o.Result = ResultQueued
	}
	return o
}

// route finds the trigger that takes ev and, when ev is firing, fills its
// plan. An event that no trigger takes or whose plan cannot be filled has
// its outcome (not yet recorded) and done set.
func (d *Dispatcher) route(ev Event) (o Outcome, t *Trigger, plan remediation.Plan, done bool) {
	o = Outcome{Event: ev.Summary()}
	t = d.triggers.Match(ev)
	if t == nil {
		o.Result, o.Reason = ResultUnmatched, "no trigger matches the event's kind, type and labels"
		return o, nil, plan, true
	}
	o.Trigger, o.Remediation = t.Name(), t.WorkflowID(ev)
	if ev.Status == StatusResolved {
		return o, t, plan, false
	}
	plan, err := t.Plan(ev)
	if err != nil {
		o.Result, o.Reason = ResultRefused, err.Error()
		var pe *PlaybookError
		if errors.As(err, &pe) {
			o.Errors = pe.Errors
		}
		return o, t, plan, true
	}
	return o, t, plan, false
}

// Refuse records an input that could not be read as events (err says why:
// an *InvalidError, a *TooLargeError, ErrUnsupported), from via. An error
// means the record was not written.
func (d *Dispatcher) Refuse(ctx context.Context, kind Kind, via string, err error) (Outcome, error) {
	o := Outcome{Result: ResultRefused, Event: EventSummary{Kind: kind, Via: via}, Reason: err.Error()}
	var ie *InvalidError
	if errors.As(err, &ie) {
		o.Errors = ie.Errors
	}
	return o, d.RecordNow(ctx, &o)
}

// Record writes o's audit record unless Dispatch already did. A failure is
// logged: the event was handled, and its remediation has its own trail.
func (d *Dispatcher) Record(ctx context.Context, o Outcome) {
	if o.recorded {
		return
	}
	if err := d.store(ctx, o); err != nil {
		d.log.Error("intake: audit record not written", "result", o.Result, "remediation", o.Remediation, "error", err)
	}
}

// RecordNow writes o's audit record now (bounded, as every record is) and
// marks o recorded, so that Record skips it. An error (a *RecordError) means
// the record was not written.
func (d *Dispatcher) RecordNow(ctx context.Context, o *Outcome) error {
	if err := d.store(ctx, *o); err != nil {
		return err
	}
	o.recorded = true
	return nil
}

// store writes o's bounded record; when the sink refuses it as too large,
// it writes o's short record instead. The error is a *RecordError.
func (d *Dispatcher) store(ctx context.Context, o Outcome) error {
	err := d.recorder.RecordIntake(ctx, o.bounded())
	if err != nil && audit.TooLarge(err) {
		d.log.Error("intake: the audit sink refused an event's record as too large; recording it without the event's content", "result", o.Result, "remediation", o.Remediation, "error", err)
		err = d.recorder.RecordIntake(ctx, o.short(err))
	}
	if err != nil {
		return &RecordError{Result: o.Result, Err: err, Permanent: audit.TooLarge(err)}
	}
	return nil
}
