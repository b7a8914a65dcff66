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

// downSink fails every Store while down, keeping nothing, and records the
// raw records it stored and whether a Store came with an ended context.
type downSink struct {
	mu     sync.Mutex
	down   bool
	raws   [][]byte
	ctxErr error
}

func (s *downSink) Name() string { return "flaky" }

func (s *downSink) Store(ctx context.Context, _ remediation.AuditRecord, raw []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		s.ctxErr = err
	}
	if s.down {
		return false, errors.New("connection refused")
	}
	s.raws = append(s.raws, raw)
	return false, nil
}

// A sink that was down gets every record it missed, in order, once it is
// back: its copy of the chain verifies whole. A caller's ended context does
// not cut the stores short.
func TestRecorderKeepsTheChainWhileASinkIsDown(t *testing.T) {
	good, flaky := &memorySink{}, &downSink{down: true}
	r, err := NewRecorder([]AuditSink{good, flaky}, "default", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel() // the client went away
	for i := range 3 {
		err := r.Record(gone, AuditEventUnmatched, struct{ N int }{i})
		if err == nil || !strings.Contains(err.Error(), "flaky: connection refused") {
			t.Fatalf("record %d with a sink down: %v", i, err)
		}
		if i > 0 && !strings.Contains(err.Error(), fmt.Sprintf("(%d records held back for this sink)", i+1)) {
			t.Errorf("record %d: %v, want the backlog counted", i, err)
		}
	}
	if len(good.recs) != 3 || len(flaky.raws) != 0 {
		t.Fatalf("good sink %d records, flaky %d; want 3 and 0", len(good.recs), len(flaky.raws))
	}
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
	if n := len(r.backlog[1]); n != 0 {
		t.Errorf("%d records still held back", n)
	}
}
