package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

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
	o, t, plan, done, err := d.route(ctx, ev)
	if done || err != nil {
		return o, err
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
			return o, d.recordNow(ctx, &o)
		}
		o.Result = ResultResolved
		return o, nil
	}
	id, runID, joined, err := d.temporal.Start(ctx, plan)
	if err != nil {
		var verr *remediation.ValidationError
		if errors.As(err, &verr) {
			o.Result, o.Reason, o.Errors = ResultRefused, err.Error(), verr.Errors
			return o, d.recordNow(ctx, &o)
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
// refused), recorded before Admit returns, and must not be queued. Any
// other gets ResultQueued with its trigger and remediation ID, and is not
// recorded: the consumer records what it does with it. An error means the
// record of an unmatched or refused event was not written.
func (d *Dispatcher) Admit(ctx context.Context, ev Event) (Outcome, error) {
	o, _, _, done, err := d.route(ctx, ev)
	if !done && err == nil {
		o.Result = ResultQueued
	}
	return o, err
}

// route finds the trigger that takes ev and, when ev is firing, fills its
// plan. An event that no trigger takes or whose plan cannot be filled has
// its outcome (recorded unless err) and done set.
func (d *Dispatcher) route(ctx context.Context, ev Event) (o Outcome, t *Trigger, plan remediation.Plan, done bool, err error) {
	o = Outcome{Event: ev.Summary()}
	t = d.triggers.Match(ev)
	if t == nil {
		o.Result, o.Reason = ResultUnmatched, "no trigger matches the event's kind, type and labels"
		return o, nil, plan, true, d.recordNow(ctx, &o)
	}
	o.Trigger, o.Remediation = t.Name(), t.WorkflowID(ev)
	if ev.Status == StatusResolved {
		return o, t, plan, false, nil
	}
	plan, err = t.Plan(ev)
	if err != nil {
		o.Result, o.Reason = ResultRefused, err.Error()
		var pe *PlaybookError
		if errors.As(err, &pe) {
			o.Errors = pe.Errors
		}
		return o, t, plan, true, d.recordNow(ctx, &o)
	}
	return o, t, plan, false, nil
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
	return o, d.recordNow(ctx, &o)
}

// Record writes o's audit record unless Dispatch already did. A failure is
// logged: the event was handled, and its remediation has its own trail.
func (d *Dispatcher) Record(ctx context.Context, o Outcome) {
	if o.recorded {
		return
	}
	if err := d.recorder.RecordIntake(ctx, o); err != nil {
		d.log.Error("intake: audit record not written", "result", o.Result, "remediation", o.Remediation, "error", err)
	}
}

func (d *Dispatcher) recordNow(ctx context.Context, o *Outcome) error {
	if err := d.recorder.RecordIntake(ctx, *o); err != nil {
		return fmt.Errorf("intake: record the %s event: %w", o.Result, err)
	}
	o.recorded = true
	return nil
}
