package audit

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
)

// chain builds a remediation run's records: started, n decisions, ended.
func chain(t *testing.T, subject, run string, n int) ([][]byte, []remediation.AuditRecord) {
	t.Helper()
	var raws [][]byte
	var recs []remediation.AuditRecord
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	prev := ""
	add := func(typ string, v any) {
		data, err := remediation.AuditData(v)
		if err != nil {
			t.Fatal(err)
		}
		raw, rec, err := remediation.NewAuditRecord("urn:reins:test", subject, run, typ, int64(len(raws)+1), prev, at.Add(time.Duration(len(raws))*time.Second), data)
		if err != nil {
			t.Fatal(err)
		}
		raws, recs, prev = append(raws, raw), append(recs, rec), rec.ID
	}
	add(remediation.AuditStarted, remediation.AuditStartedData{Environment: "staging", Explanation: "test"})
	for i := 0; i < n; i++ {
		add(remediation.AuditPolicyDecided, remediation.AuditDecisionData{AuditStep: remediation.AuditStep{Step: i}, Decision: remediation.Decision{Effect: remediation.EffectAllow}})
	}
	add(remediation.AuditEnded, remediation.AuditEndedData{State: remediation.StateCompleted})
	return raws, recs
}

func TestVerifyNamesTheFirstBadRecord(t *testing.T) {
	raws, recs := chain(t, "rem", "run", 4) // #1 started, #2..#5 decisions, #6 ended
	swap := func(i, j int) [][]byte {
		out := append([][]byte(nil), raws...)
		out[i], out[j] = out[j], out[i]
		return out
	}
	without := func(i int) [][]byte {
		return append(append([][]byte(nil), raws[:i]...), raws[i+1:]...)
	}
	altered := append([][]byte(nil), raws...)
	altered[2] = bytes.Replace(raws[2], []byte(`"step":1`), []byte(`"step":7`), 1)
	// An alteration whose author recomputed the record's own hash: the next
	// record's prev still names the original.
	forged := append([][]byte(nil), raws...)
	data, _ := remediation.AuditData(remediation.AuditDecisionData{AuditStep: remediation.AuditStep{Step: 1}, Decision: remediation.Decision{Effect: remediation.EffectDeny}})
	forged[2], _, _ = remediation.NewAuditRecord("urn:reins:test", "rem", "run", remediation.AuditPolicyDecided, 3, recs[1].ID, recs[2].Time, data)

	cases := []struct {
		name    string
		records [][]byte
		kind    string
		seq     int64
		id      string
		message string
	}{
		{"altered", altered, ProblemAltered, 3, recs[2].ID, "record at position 3 (#3, id " + recs[2].ID[:12] + ") is altered"},
		{"re-hashed", forged, ProblemBroken, 3, forged3ID(t, forged[2]), "the chain breaks at #3 reins.policy.decided"},
		{"deleted", without(3), ProblemMissing, 4, recs[3].ID, "record #4 (id " + recs[3].ID[:12] + ") is missing"},
		{"deleted first", without(0), ProblemMissing, 1, recs[0].ID, "record #1 is missing"},
		{"reordered", swap(3, 4), ProblemReordered, 5, recs[4].ID, "#5 reins.policy.decided (id " + recs[4].ID[:12] + ") is out of order"},
		{"duplicated", append(append([][]byte(nil), raws[:4]...), raws[3:]...), ProblemDuplicate, 4, recs[3].ID, "appears again at position 5"},
		{"end missing", raws[:5], ProblemOpen, 6, "", "no end record"},
		{"after end", append(append([][]byte(nil), raws...), raws[1]), ProblemAfterEnd, 2, recs[1].ID, "follows the end record"},
		{"empty", nil, ProblemEmpty, 0, "", "no audit records"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := Verify("rem", "run", c.records, false)
			if rep.OK() {
				t.Fatalf("Verify passed: %s", rep)
			}
			p := rep.Problem
			if p.Kind != c.kind || p.Seq != c.seq || p.ID != c.id || !strings.Contains(p.Message, c.message) {
				t.Errorf("problem %+v\nwant kind %s seq %d id %s message containing %q", p, c.kind, c.seq, c.id, c.message)
			}
		})
	}
	rep := Verify("rem", "run", raws, false)
	if !rep.OK() || rep.Records != 6 || rep.End != remediation.StateCompleted || rep.LastID != recs[5].ID {
		t.Fatalf("intact chain: %s", rep)
	}
	if rep := Verify("rem", "run", raws[:5], true); !rep.OK() {
		t.Errorf("open chain with allowOpen: %s", rep)
	}
	if rep := Verify("other", "run", raws, false); rep.OK() {
		t.Error("records of another remediation verified")
	}
}

func forged3ID(t *testing.T, raw []byte) string {
	t.Helper()
	rec, err := remediation.ParseAuditRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	return rec.ID
}

func TestVerifyRunsSeparatesRuns(t *testing.T) {
	a, _ := chain(t, "rem", "run-a", 1)
	b, _ := chain(t, "rem", "run-b", 2)
	mixed := append(append([][]byte(nil), a...), b...)
	reps := VerifyRuns("rem", "", mixed, false)
	if len(reps) != 2 || !reps[0].OK() || !reps[1].OK() || reps[0].Run != "run-a" || reps[1].Records != 4 {
		t.Fatalf("reports %+v", reps)
	}
	if reps := VerifyRuns("rem", "run-b", mixed, false); len(reps) != 1 || !reps[0].OK() || reps[0].Records != 4 {
		t.Fatalf("run-b: %+v", reps)
	}
}

func TestFileStoresEachRecordOnceAndSyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.jsonl")
	raws, recs := chain(t, "rem", "run", 2)
	f, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range raws {
		if present, err := f.Store(ctx, recs[i], raws[i]); err != nil || present {
			t.Fatalf("store #%d: present %t, %v", i+1, present, err)
		}
	}
	if present, err := f.Store(ctx, recs[1], raws[1]); err != nil || !present {
		t.Fatalf("store again: present %t, %v", present, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Another process (here: another open file) sees the same index.
	g, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if present, err := g.Store(ctx, recs[0], raws[0]); err != nil || !present {
		t.Fatalf("store after reopen: present %t, %v", present, err)
	}
	got, err := ReadFile(path, "rem")
	if err != nil {
		t.Fatal(err)
	}
	if rep := Verify("rem", "run", got, false); !rep.OK() || rep.Records != len(raws) {
		t.Fatalf("file chain: %s", rep)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v (%v), want 0600", info.Mode(), err)
	}
}

// A record whose fsync failed is not reported present until a later
// fsync succeeded: the line may be in the file but not on disk.
func TestFileRecordCountsOnlyOnceSynced(t *testing.T) {
	raws, recs := chain(t, "rem", "run", 0)
	f, err := OpenFile(filepath.Join(t.TempDir(), "audit.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syncs, fail := 0, true
	f.sync = func(*os.File) error {
		syncs++
		if fail {
			return errors.New("input/output error")
		}
		return nil
	}
	ctx := context.Background()
	if _, err := f.Store(ctx, recs[0], raws[0]); err == nil || !strings.Contains(err.Error(), "fsync") {
		t.Fatalf("store with a failing fsync: %v", err)
	}
	// Still failing: the record found in the file is not present yet.
	if present, err := f.Store(ctx, recs[0], raws[0]); err == nil || present {
		t.Fatalf("retry with a failing fsync: present %t, %v", present, err)
	}
	fail = false
	if present, err := f.Store(ctx, recs[0], raws[0]); err != nil || !present || syncs != 3 {
		t.Fatalf("retry: present %t, %v after %d fsyncs; want present once synced (3)", present, err, syncs)
	}
}

// Two writers on one file (two workers on a host) append concurrently: every
// record once, no line interleaved.
func TestFileConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var all [][]byte
	var recs []remediation.AuditRecord
	for _, run := range []string{"r1", "r2", "r3", "r4"} {
		raws, rs := chain(t, "rem", run, 10)
		all, recs = append(all, raws...), append(recs, rs...)
	}
	writers := make([]*File, 2)
	for i := range writers {
		w, err := OpenFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		writers[i] = w
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(all))
	for _, w := range writers {
		wg.Add(1)
		go func(w *File) {
			defer wg.Done()
			for i := range all {
				if _, err := w.Store(context.Background(), recs[i], all[i]); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(data, []byte("\n")); lines != len(all) {
		t.Fatalf("%d lines, want %d", lines, len(all))
	}
	got, err := ReadFile(path, "rem")
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range VerifyRuns("rem", "", got, false) {
		if !rep.OK() {
			t.Error(rep)
		}
	}
}

// A crash mid-write leaves a partial last line: it is cut off, and the
// record (delivered again by the retry) is written whole.
func TestFileCutsATornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	raws, recs := chain(t, "rem", "run", 1)
	if err := os.WriteFile(path, append(append(append([]byte(nil), raws[0]...), '\n'), raws[1][:40]...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range raws {
		if _, err := f.Store(context.Background(), recs[i], raws[i]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadFile(path, "rem")
	if err != nil {
		t.Fatal(err)
	}
	if rep := Verify("rem", "run", got, false); !rep.OK() || rep.Records != 3 {
		t.Fatalf("after a torn line: %s", rep)
	}
}

func TestFileReadsReportAlteredLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	raws, recs := chain(t, "rem", "run", 2)
	other, _ := chain(t, "other", "run", 1)
	var buf bytes.Buffer
	for i, raw := range raws {
		if i == 2 {
			raw = bytes.Replace(raw, []byte(`"effect":"allow"`), []byte(`"effect":"deny"`), 1)
		}
		buf.Write(raw)
		buf.WriteByte('\n')
		buf.Write(other[min(i, len(other)-1)])
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path, "rem")
	if err != nil {
		t.Fatal(err)
	}
	rep := Verify("rem", "run", got, false)
	if rep.OK() || rep.Problem.Kind != ProblemAltered || rep.Problem.Seq != 3 || rep.Problem.ID != recs[2].ID {
		t.Fatalf("report %s", rep)
	}
}

func TestWebhookSendsIdempotencyKey(t *testing.T) {
	raws, recs := chain(t, "rem", "run", 0)
	var (
		mu   sync.Mutex
		seen = map[string][]byte{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		key := r.Header.Get("Idempotency-Key")
		switch {
		case r.Header.Get("Content-Type") != remediation.AuditMediaType || r.Header.Get("Authorization") != "Bearer s3cret":
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		case key == recs[1].ID:
			http.Error(w, "sink down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := seen[key]; ok {
			w.WriteHeader(http.StatusConflict)
			return
		}
		seen[key] = body.Bytes()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	w, err := NewWebhook(WebhookOptions{URL: srv.URL, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if present, err := w.Store(ctx, recs[0], raws[0]); err != nil || present {
		t.Fatalf("first POST: %t %v", present, err)
	}
	if present, err := w.Store(ctx, recs[0], raws[0]); err != nil || !present {
		t.Fatalf("second POST: %t %v", present, err)
	}
	if _, err := w.Store(ctx, recs[1], raws[1]); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 not reported: %v", err)
	}
	if !bytes.Equal(seen[recs[0].ID], raws[0]) {
		t.Errorf("body %s, want the record", seen[recs[0].ID])
	}
	if _, err := NewWebhook(WebhookOptions{URL: "ftp://x"}); err == nil {
		t.Error("an ftp URL was accepted")
	}
}

// A redirect is never followed: after a 302 the POST would become a GET
// without the record, and the final 200 would pass for a stored record.
func TestWebhookRedirectIsAnError(t *testing.T) {
	raws, recs := chain(t, "rem", "run", 0)
	var gets int
	var mu sync.Mutex
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer final.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		srv := httptest.NewServer(http.RedirectHandler(final.URL+"/login", code))
		w, err := NewWebhook(WebhookOptions{URL: srv.URL, Token: "s3cret", Client: &http.Client{}})
		if err != nil {
			t.Fatal(err)
		}
		present, err := w.Store(context.Background(), recs[0], raws[0])
		srv.Close()
		if err == nil || present || !strings.Contains(err.Error(), "redirects are not followed") || !strings.Contains(err.Error(), "/login") {
			t.Errorf("%d: stored %t, %v; want an error naming the redirect", code, present, err)
		}
	}
	if gets != 0 {
		t.Errorf("the redirect was followed %d times", gets)
	}
}

func TestSubjectTokenIsInjective(t *testing.T) {
	ids := []string{"a.b", "a_b", "a_2Eb", "a/b", "a:b", "A-b", "reins-alertmanager-4f1c2a"}
	seen := map[string]string{}
	for _, id := range ids {
		tok := SubjectToken(id)
		if strings.ContainsAny(tok, ".*> \t") {
			t.Errorf("token %q of %q is not one subject token", tok, id)
		}
		if other, ok := seen[tok]; ok {
			t.Errorf("%q and %q share token %q", id, other, tok)
		}
		seen[tok] = id
	}
	if SubjectToken("reins-alertmanager-4f1c2a") != "reins-alertmanager-4f1c2a" {
		t.Error("a plain ID is not kept as it is")
	}
}
