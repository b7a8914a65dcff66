package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/remediation"
)

// Gateway audit record types: what reached the gateway and what it did with
// it, beside the records each remediation writes itself.
const (
	// AuditSlackRejected: a Slack interaction request whose signature,
	// timestamp or freshness failed; nothing was signalled.
	AuditSlackRejected = remediation.AuditGatewaySlackRejected
	// AuditApprovalRefused: an authenticated click or CLI approval the
	// gateway refused (outside the group, requester, already counted, decided step).
	AuditApprovalRefused = remediation.AuditGatewayApprovalRefused
	// AuditApprovalSignalled: an approval the gateway signed and signalled.
	AuditApprovalSignalled = remediation.AuditGatewayApprovalSignalled
	// AuditEventUnmatched: an event that matched no trigger; nothing started.
	AuditEventUnmatched = remediation.AuditGatewayEventUnmatched
	// AuditEventStarted: an event that started a remediation.
	AuditEventStarted = remediation.AuditGatewayEventStarted
	// AuditEventDuplicate: an event that joined a running remediation.
	AuditEventDuplicate = remediation.AuditGatewayEventDuplicate
	// AuditEventResolved: a resolved alert, signalled to its remediation.
	AuditEventResolved = remediation.AuditGatewayEventResolved
	// AuditAgentRefused: an agent call refused (authentication, rate, bad plan).
	AuditAgentRefused = remediation.AuditGatewayAgentRefused
	// AuditAgentStarted: a plan an agent proposed, started.
	AuditAgentStarted = remediation.AuditGatewayAgentStarted
)

// AuditSink stores audit records (package audit has the NATS, file and
// webhook sinks; the worker's activities.AuditSink is the same interface).
type AuditSink interface {
	Name() string
	Store(ctx context.Context, rec remediation.AuditRecord, raw []byte) (present bool, err error)
}

// Recorder writes the gateway's own audit chain: subject "gateway", one run
// per process (a random ID), hash-chained like a remediation's, so that
// `reins audit verify` checks it the same way. Safe for concurrent use.
type Recorder struct {
	sinks  []AuditSink
	source string
	runID  string
	log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	seq  int64
	prev string
	// held is, per sink, what it has yet to store (see sinkState).
	held []sinkState
}

// sinkState is what one sink has yet to store: the records it failed to
// store, oldest first, which are stored again, in order, before its next one
// (so that a sink that was down gets the whole chain once it is back), and
// when to try it again.
type sinkState struct {
	backlog []pendingRecord
	bytes   int
	// retryAt: until then a failing sink is not called, and records queue
	// behind its backlog; backoff is the wait after its next failure.
	retryAt time.Time
	backoff time.Duration
}

// pendingRecord is a record a sink has yet to store.
type pendingRecord struct {
	rec remediation.AuditRecord
	enc []byte
}

// Bounds of the recorder: how long one sink may take to store a record (the
// caller's deadline, if sooner, applies too); how long a failing sink is
// left alone, at most; and how much it may hold back before its oldest
// records are dropped (each drop is logged: that sink's chain then has a
// gap).
const (
	sinkTimeout     = 5 * time.Second
	maxSinkBackoff  = 30 * time.Second
	maxBacklogBytes = 64 << 20
)

// RecorderSubject is the subject of the gateway's audit records.
const RecorderSubject = "gateway"

// NewRecorder records to sinks (at least one) under namespace's source.
func NewRecorder(sinks []AuditSink, namespace string, log *slog.Logger) (*Recorder, error) {
	if len(sinks) == 0 {
		return nil, errors.New("gateway: no audit sink configured: the gateway records every refusal and start (audit.nats.url, audit.file.path or audit.webhook.url)")
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("gateway audit run id: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{sinks: sinks, source: remediation.AuditSource(namespace), runID: "gateway-" + hex.EncodeToString(id[:]), log: log,
		now: time.Now, held: make([]sinkState, len(sinks))}, nil
}

// RunID is this process's chain.
func (r *Recorder) RunID() string { return r.runID }

// Record appends a record of typ with data (a struct without maps) to the
// chain and stores it in every sink; callers decide whether a failed record
// stops them. A sink that fails keeps the record, with any it failed before,
// to store in order once it works again; meanwhile it is left alone for a
// while (1 s, doubling up to 30 s), so that a sink that hangs slows one
// record down, not each. A record a sink refuses for good (too large for
// NATS) is not kept: that sink's chain has a gap, which is logged, and a
// record no sink took leaves the chain as it was. A client that goes away
// does not cut the stores short; each is bounded by sinkTimeout and by
// ctx's deadline.
func (r *Recorder) Record(ctx context.Context, typ string, data any) error {
	raw, err := remediation.AuditData(data)
	if err != nil {
		return fmt.Errorf("gateway audit %s: %w", typ, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	enc, rec, err := remediation.NewAuditRecord(r.source, RecorderSubject, r.runID, typ, r.seq+1, r.prev, r.now(), raw)
	if err != nil {
		return fmt.Errorf("gateway audit %s: %w", typ, err)
	}
	seq, prev := r.seq, r.prev
	r.seq, r.prev = rec.Seq, rec.ID
	// Stored under the lock so that every sink sees the chain in order.
	var errs []error
	refused := 0
	for i, s := range r.sinks {
		gone, err := r.storeIn(ctx, i, pendingRecord{rec, enc})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
		if gone {
			refused++
		}
	}
	if refused == len(r.sinks) {
		// No sink has it or will: the next record takes its place.
		r.seq, r.prev = seq, prev
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Error("gateway audit record not stored everywhere", "type", typ, "seq", rec.Seq, "error", err)
		return fmt.Errorf("gateway audit %s #%d: %w", typ, rec.Seq, err)
	}
	return nil
}

// storeIn stores sink i's backlog, then p, in order, stopping at the first
// failure, unless the sink is being left alone after one; what is left stays
// in the backlog, whose oldest records are dropped beyond maxBacklogBytes.
// gone reports that the sink refused p for good. r.mu is held.
func (r *Recorder) storeIn(ctx context.Context, i int, p pendingRecord) (gone bool, err error) {
	h, sink := &r.held[i], r.sinks[i]
	h.backlog = append(h.backlog, p)
	h.bytes += len(p.enc)
	if now := r.now(); now.Before(h.retryAt) {
		err = fmt.Errorf("failing; not tried again before %s", h.retryAt.Format(time.RFC3339))
	} else {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sinkTimeout)
		if dl, ok := ctx.Deadline(); ok {
			sctx, cancel = context.WithDeadline(sctx, dl)
		}
		for len(h.backlog) > 0 {
			q := h.backlog[0]
			serr := sinkStore(sctx, sink, q)
			if serr != nil && !audit.TooLarge(serr) {
				err = serr
				break
			}
			if serr != nil {
				// Refused for good: storing it again cannot help.
				r.log.Error("gateway audit record dropped: its sink refuses it for its size; that sink's chain has a gap", "sink", sink.Name(),
					"type", q.rec.Type, "seq", q.rec.Seq, "id", q.rec.ID, "error", serr)
				if q.rec.ID == p.rec.ID {
					err, gone = serr, true
				}
			}
			h.backlog = h.backlog[1:]
			h.bytes -= len(q.enc)
		}
		cancel()
		if len(h.backlog) == 0 {
			h.retryAt, h.backoff = time.Time{}, 0
		} else {
			h.backoff = min(max(2*h.backoff, time.Second), maxSinkBackoff)
			h.retryAt = now.Add(h.backoff)
		}
	}
	for len(h.backlog) > 1 && h.bytes > maxBacklogBytes {
		lost := h.backlog[0]
		h.backlog = h.backlog[1:]
		h.bytes -= len(lost.enc)
		r.log.Error("gateway audit record dropped: its sink has been failing and holds too much back", "sink", sink.Name(),
			"type", lost.rec.Type, "seq", lost.rec.Seq, "id", lost.rec.ID)
	}
	if err != nil && len(h.backlog) > 1 {
		err = fmt.Errorf("%w (%d records held back for this sink)", err, len(h.backlog))
	}
	return gone, err
}

func sinkStore(ctx context.Context, s AuditSink, p pendingRecord) error {
	_, err := s.Store(ctx, p.rec, p.enc)
	return err
}

// RefusalBudget bounds the audit records that requests nobody authenticated
// can cause: a flood of forged or tokenless requests must neither fill the
// audit trail nor slow the door down with writes. It lets a burst of 20
// through, then 5 a second; the first record after some were left out
// carries their count. Safe for concurrent use.
type RefusalBudget struct {
	mu         sync.Mutex
	limit      *rate.Limiter
	suppressed int64
}

// NewRefusalBudget returns a full budget.
func NewRefusalBudget() *RefusalBudget {
	return &RefusalBudget{limit: rate.NewLimiter(5, 20)}
}

// Take reports whether one more record may be written and, when it may, how
// many were left out since the last one written.
func (b *RefusalBudget) Take() (ok bool, suppressed int64) {
	return b.take(time.Now())
}

func (b *RefusalBudget) take(at time.Time) (bool, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.limit.AllowN(at, 1) {
		b.suppressed++
		return false, 0
	}
	suppressed := b.suppressed
	b.suppressed = 0
	return true, suppressed
}
