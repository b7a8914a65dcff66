package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

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
