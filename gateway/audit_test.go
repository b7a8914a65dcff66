package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/remediation"
)

// memorySink keeps the gateway's audit records in memory; Store answers err
// (after keeping the record).
type memorySink struct {
	mu   sync.Mutex
	recs []remediation.AuditRecord
	err  error
}

func (s *memorySink) Name() string { return "memory" }

func (s *memorySink) Store(_ context.Context, rec remediation.AuditRecord, _ []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, rec)
	return false, s.err
}

// budgetAllows is the most records a RefusalBudget lets through in d: its
// burst, and 5 a second.
func budgetAllows(d time.Duration) int {
	return 20 + int(d.Seconds()*5) + 1
}

func TestRefusalBudget(t *testing.T) {
	b := NewRefusalBudget()
	at := time.Now()
	for i := range 20 {
		if ok, n := b.take(at); !ok || n != 0 {
			t.Fatalf("take %d of the burst: %v, %d left out", i, ok, n)
		}
	}
	for i := range 7 {
		if ok, _ := b.take(at); ok {
			t.Fatalf("take %d past the burst, at the same instant, was allowed", i)
		}
	}
	// 5 a second: one more 200ms later, carrying the 7 left out.
	if ok, n := b.take(at.Add(200 * time.Millisecond)); !ok || n != 7 {
		t.Fatalf("after 200ms: %v, %d left out; want true, 7", ok, n)
	}
	if ok, n := b.take(at.Add(400 * time.Millisecond)); !ok || n != 0 {
		t.Fatalf("after 400ms: %v, %d left out; want true, 0 (already reported)", ok, n)
	}
}

// downSink fails every Store while down, keeping nothing, refuses the
// records of tooLarge for their size, and records the raw records it
// stored, how often it was called, and whether a Store came with an ended
// context.
type downSink struct {
	mu       sync.Mutex
	down     bool
	tooLarge string // a record whose JSON holds it is refused for its size
	raws     [][]byte
	calls    int
	ctxErr   error
}

func (s *downSink) Name() string { return "flaky" }

func (s *downSink) Store(ctx context.Context, rec remediation.AuditRecord, raw []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if err := ctx.Err(); err != nil {
		s.ctxErr = err
	}
	if s.down {
		return false, errors.New("connection refused")
	}
	if s.tooLarge != "" && strings.Contains(string(raw), s.tooLarge) {
		return false, fmt.Errorf("publish: %w", nats.ErrMaxPayload)
	}
	s.raws = append(s.raws, raw)
	return false, nil
}

// A sink that was down gets every record it missed, in order, once it is
// back: its copy of the chain verifies whole. While it fails it is left
// alone for a while, so that each record does not wait for it. A caller's
// ended context does not cut the stores short.
func TestRecorderKeepsTheChainWhileASinkIsDown(t *testing.T) {
	good, flaky := &memorySink{}, &downSink{down: true}
	r, err := NewRecorder([]AuditSink{good, flaky}, "default", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	gone, cancel := context.WithCancel(context.Background())
	cancel() // the client went away
	if err := r.Record(gone, AuditEventUnmatched, struct{ N int }{0}); err == nil || !strings.Contains(err.Error(), "flaky: connection refused") {
		t.Fatalf("record with a sink down: %v", err)
	}
	for i := 1; i < 3; i++ {
		err := r.Record(gone, AuditEventUnmatched, struct{ N int }{i})
		if err == nil || !strings.Contains(err.Error(), "flaky: failing; not tried again before") ||
			!strings.Contains(err.Error(), fmt.Sprintf("(%d records held back for this sink)", i+1)) {
			t.Fatalf("record %d while the sink is left alone: %v", i, err)
		}
	}
	if len(good.recs) != 3 || len(flaky.raws) != 0 || flaky.calls != 1 {
		t.Fatalf("good sink %d records, flaky %d after %d calls; want 3, and 0 after 1", len(good.recs), len(flaky.raws), flaky.calls)
	}
	now = now.Add(2 * time.Second)
	flaky.down = false
	if err := r.Record(gone, AuditEventUnmatched, struct{ N int }{3}); err != nil {
		t.Fatalf("record with the sink back: %v", err)
	}
	if flaky.ctxErr != nil {
		t.Errorf("a store came with the caller's ended context: %v", flaky.ctxErr)
	}
	rep := audit.Verify(RecorderSubject, r.RunID(), flaky.raws, true)
	if !rep.OK() || rep.Records != 4 {
		t.Fatalf("the sink that was down holds %d records: %s", len(flaky.raws), rep)
	}
	if n := len(r.held[1].backlog); n != 0 {
		t.Errorf("%d records still held back", n)
	}
}

// A record a sink refuses for its size is not kept for it (it would block
// every later one): the error says why, so that the intake can record a
// shorter one, and when no sink took it the chain goes on as if it had not
// been made.
func TestRecorderDropsARecordRefusedForItsSize(t *testing.T) {
	only := &downSink{tooLarge: `"N":1`}
	r, err := NewRecorder([]AuditSink{only}, "default", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, wantTooLarge := range []bool{false, true, false, false} {
		err := r.Record(ctx, AuditEventUnmatched, struct{ N int }{i})
		if got := err != nil && audit.TooLarge(err); got != wantTooLarge || (!wantTooLarge && err != nil) {
			t.Fatalf("record %d: %v, want too large %v", i, err, wantTooLarge)
		}
	}
	if n := len(r.held[0].backlog); n != 0 {
		t.Errorf("%d records held back", n)
	}
	// The refused record took no place in the chain: records 1, 2, 3 of it
	// were stored, and verify.
	rep := audit.Verify(RecorderSubject, r.RunID(), only.raws, true)
	if !rep.OK() || rep.Records != 3 {
		t.Fatalf("chain of %d records: %s", len(only.raws), rep)
	}
}
