package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/remediation"
)

// AuditSink stores audit records (package audit has the NATS, file and
// webhook sinks).
type AuditSink interface {
	// Name names the sink in results and logs.
	Name() string
	// Store stores the record (raw is its exact encoding) unless the sink
	// already has it, and reports whether it had it. Storing a record again
	// never duplicates it.
	Store(ctx context.Context, rec remediation.AuditRecord, raw []byte) (present bool, err error)
}

// Audit delivers the workflow's audit records to every sink.
type Audit struct {
	// Sinks get every record, in this order. At least one.
	Sinks []AuditSink
	// HeartbeatInterval is how often a delivery in progress heartbeats.
	// Default 2s (the activity's heartbeat timeout is 10s).
	HeartbeatInterval time.Duration
}

// Record checks the record (envelope, and that its id is its hash) and
// stores it in every sink. A sink that fails does not stop the others; the
// activity then fails and is retried, and the sinks that already stored the
// record skip it.
func (a *Audit) Record(ctx context.Context, in remediation.RecordAuditInput) (remediation.RecordAuditResult, error) {
	rec, err := remediation.ParseAuditRecord(in.Record)
	if err != nil {
		return remediation.RecordAuditResult{}, temporal.NewNonRetryableApplicationError(err.Error(), remediation.ErrAuditInvalid, err)
	}
	if len(a.Sinks) == 0 {
		return remediation.RecordAuditResult{}, errors.New("no audit sink configured: the worker must not run without one")
	}
	stop := a.heartbeat(ctx, rec.Seq)
	defer stop()

	logger := activity.GetLogger(ctx)
	res := remediation.RecordAuditResult{ID: rec.ID}
	var errs []error
	for _, s := range a.Sinks {
		present, err := s.Store(ctx, rec, in.Record)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		case present:
			res.Present = append(res.Present, s.Name())
		default:
			res.Stored = append(res.Stored, s.Name())
		}
	}
	if err := errors.Join(errs...); err != nil {
		logger.Warn("audit record not stored everywhere; retrying", "remediation", rec.Subject, "record", rec.Label(), "error", err)
		return res, fmt.Errorf("deliver audit record %s: %w", rec.Label(), err)
	}
	if len(res.Present) > 0 {
		logger.Info("audit record was already stored", "remediation", rec.Subject, "record", rec.Label(), "sinks", res.Present)
	}
	return res, nil
}

// heartbeat records heartbeats until stop is called, so that a worker that
// dies mid-delivery is noticed within the heartbeat timeout.
func (a *Audit) heartbeat(ctx context.Context, seq int64) (stop func()) {
	every := a.HeartbeatInterval
	if every <= 0 {
		every = 2 * time.Second
	}
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, seq)
			}
		}
	}()
	return func() { cancel(); <-done }
}
