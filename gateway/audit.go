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

	mu   sync.Mutex
	seq  int64
	prev string
	// backlog holds, per sink, the records it failed to store, oldest
	// first, and backlogBytes their size: they are stored again, in order,
	// before that sink's next record, so that a sink that was down gets the
	// whole chain once it is back.
	backlog      [][]pendingRecord
	backlogBytes []int
}

// pendingRecord is a record a sink has yet to store.
type pendingRecord struct {
	rec remediation.AuditRecord
	enc []byte
}

// Bounds of the recorder: how long one Record may spend storing, and how
// much a sink that is down may hold back before the oldest records are
// dropped (each drop is logged: the chain in that sink then has a gap).
const (
	recordTimeout   = 15 * time.Second
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
		backlog: make([][]pendingRecord, len(sinks)), backlogBytes: make([]int, len(sinks))}, nil
}

// RunID is this process's chain.
func (r *Recorder) RunID() string { return r.runID }

// Record appends a record of typ with data (a struct without maps) to the
// chain and stores it in every sink. A sink that fails is logged and
// reported, and keeps the record (with any it failed before) to store again,
// in order, before its next one; callers decide whether a failed record
// stops them. The stores do not end with ctx (a client that goes away must
// not cut a sink's chain); they are bounded by recordTimeout.
func (r *Recorder) Record(ctx context.Context, typ string, data any) error {
	raw, err := remediation.AuditData(data)
	if err != nil {
		return fmt.Errorf("gateway audit %s: %w", typ, err)
	}
	r.mu.Lock()
	enc, rec, err := remediation.NewAuditRecord(r.source, RecorderSubject, r.runID, typ, r.seq+1, r.prev, time.Now(), raw)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("gateway audit %s: %w", typ, err)
	}
	r.seq, r.prev = rec.Seq, rec.ID
	// Stored under the lock so that every sink sees the chain in order.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var errs []error
	for i, s := range r.sinks {
		if err := r.storeIn(sctx, i, pendingRecord{rec, enc}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	r.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		r.log.Error("gateway audit record not stored everywhere", "type", typ, "seq", rec.Seq, "error", err)
		return fmt.Errorf("gateway audit %s #%d: %w", typ, rec.Seq, err)
	}
	return nil
}

// storeIn stores sink i's backlog, then p, in order, stopping at the first
// failure; what is left stays in the backlog, whose oldest records are
// dropped beyond maxBacklogBytes. r.mu is held.
func (r *Recorder) storeIn(ctx context.Context, i int, p pendingRecord) error {
	r.backlog[i] = append(r.backlog[i], p)
	r.backlogBytes[i] += len(p.enc)
	stored := 0
	var err error
	for _, q := range r.backlog[i] {
		if _, err = r.sinks[i].Store(ctx, q.rec, q.enc); err != nil {
			break
		}
		r.backlogBytes[i] -= len(q.enc)
		stored++
	}
	r.backlog[i] = r.backlog[i][stored:]
	for len(r.backlog[i]) > 1 && r.backlogBytes[i] > maxBacklogBytes {
		lost := r.backlog[i][0]
		r.backlog[i] = r.backlog[i][1:]
		r.backlogBytes[i] -= len(lost.enc)
		r.log.Error("gateway audit record dropped: its sink has been failing and holds too much back", "sink", r.sinks[i].Name(),
			"type", lost.rec.Type, "seq", lost.rec.Seq, "id", lost.rec.ID)
	}
	if err != nil && len(r.backlog[i]) > 1 {
		err = fmt.Errorf("%w (%d records held back for this sink)", err, len(r.backlog[i]))
	}
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
