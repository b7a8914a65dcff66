package audit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/remediation"
)

// The JetStream sink against a real (embedded) nats-server: each record
// once, in order, per run; the stream is made to keep them; it survives a
// server restart.
func TestNATSStoresEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	n, err := OpenNATS(ctx, NATSOptions{URL: srv.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	raws, recs := chain(t, "it/rem.1", "run-a", 3)
	other, otherRecs := chain(t, "it/rem.1", "run-b", 1)
	for i := range raws {
		if present, err := n.Store(ctx, recs[i], raws[i]); err != nil || present {
			t.Fatalf("store #%d: present %t, %v", i+1, present, err)
		}
		if i < len(other) {
			if _, err := n.Store(ctx, otherRecs[i], other[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The last record again (the subject's last), and an older one.
	for _, i := range []int{len(raws) - 1, 1} {
		if present, err := n.Store(ctx, recs[i], raws[i]); err != nil || !present {
			t.Fatalf("store #%d again: present %t, %v", i+1, present, err)
		}
	}
	got, err := n.Read(ctx, "it/rem.1")
	if err != nil {
		t.Fatal(err)
	}
	reps := VerifyRuns("it/rem.1", "", got, false)
	if len(reps) != 2 || !reps[0].OK() || !reps[1].OK() || reps[0].Records != len(raws) || reps[1].Records != len(other) {
		t.Fatalf("reports: %+v", reps)
	}
	if n.Subject("it/rem.1", "run-a") != "reins.audit.it_2Frem_2E1.run-a" {
		t.Errorf("subject %s", n.Subject("it/rem.1", "run-a"))
	}

	// The stream refuses deletes, and deduplicates by id.
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.DenyDelete || !cfg.DenyPurge || cfg.Duplicates != DefaultDuplicateWindow || cfg.Storage != jetstream.FileStorage {
		t.Errorf("stream config %+v", cfg)
	}
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Error("a record was deleted from the audit stream")
	}
	ack, err := js.Publish(ctx, n.Subject("it/rem.1", "run-a"), raws[0], jetstream.WithMsgID(recs[0].ID))
	if err != nil || !ack.Duplicate {
		t.Errorf("a republished record was not a duplicate: %+v %v", ack, err)
	}

	// A record conflicting with one already in the chain is refused.
	data, _ := remediation.AuditData(remediation.AuditDecisionData{})
	fork, forkRec, _ := remediation.NewAuditRecord("urn:reins:test", "it/rem.1", "run-a", remediation.AuditPolicyDecided, 2, recs[0].ID, time.Now(), data)
	if _, err := n.Store(ctx, forkRec, fork); err == nil {
		t.Error("a forked record was published")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same folder: the records are still there.
	srv.Stop()
	srv, err = devstack.StartNATS(ctx, devstack.NATSOptions{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	n, err = OpenNATS(ctx, NATSOptions{URL: srv.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	got, err = n.Read(ctx, "it/rem.1")
	if err != nil || len(got) != len(raws)+len(other) {
		t.Fatalf("after restart: %d records, %v", len(got), err)
	}
}
