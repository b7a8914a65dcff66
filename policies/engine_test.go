package policies

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
)

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// syncBuffer is a log sink tests can read while the engine writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return e
}

// assertDeny checks that d is a deny whose first reason starts with prefix.
func assertDeny(t *testing.T, d remediation.Decision, prefix string) {
	t.Helper()
	if d.Effect != remediation.EffectDeny {
		t.Fatalf("effect = %q, want deny; decision %+v", d.Effect, d)
	}
	if len(d.Reasons) == 0 || !strings.HasPrefix(d.Reasons[0], prefix) {
		t.Fatalf("reasons = %q, want the first to start with %q", d.Reasons, prefix)
	}
	if d.Risk == "" {
		t.Errorf("risk is empty; every decision has one")
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDefaultBundleDecides(t *testing.T) {
	e := newEngine(t, Options{})
	if e.Digest() == "" || e.Digest() != DefaultDigest() {
		t.Fatalf("Digest() = %q, want the default bundle's %q", e.Digest(), DefaultDigest())
	}
	if e.Err() != nil {
		t.Fatalf("Err() = %v", e.Err())
	}
	d := e.Decide(context.Background(), TypicalInput())
	if d.Effect != remediation.EffectAllow || d.Risk != remediation.RiskMedium {
		t.Fatalf("typical input: %+v, want allow/medium", d)
	}
	if d.Bundle != e.Digest() {
		t.Errorf("decision bundle = %q, want %q", d.Bundle, e.Digest())
	}
}

func TestBrokenBundleIsRefusedWithFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want []string // "file:line" prefixes of problems
	}{
		{"broken", []string{filepath.Join("testdata", "broken", "decision.rego") + ":5", filepath.Join("testdata", "broken", "other.rego") + ":5:1"}},
		{"compile_error", []string{filepath.Join("testdata", "compile_error", "decision.rego") + ":5"}},
		{"bad_data", []string{filepath.Join("testdata", "bad_data", "data.json") + ":4:19"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.dir)
			e, err := New(Options{Dir: dir, Logger: testLogger(t)})
			if e == nil {
				t.Fatal("New returned a nil Engine")
			}
			var be *BundleError
			if !errors.As(err, &be) {
				t.Fatalf("New: error %v, want a *BundleError", err)
			}
			t.Logf("error: %v", err)
			for _, want := range tc.want {
				found := false
				for _, p := range be.Problems {
					if strings.HasPrefix(p.String(), want) {
						found = true
					}
				}
				if !found {
					t.Errorf("problems %q: none at %s", be.Problems, want)
				}
			}
			if !errors.Is(e.Err(), err) {
				t.Errorf("Err() = %v, want the load error", e.Err())
			}
			if e.Digest() != "" {
				t.Errorf("Digest() = %q, want empty with no good bundle", e.Digest())
			}
			d := e.Decide(context.Background(), TypicalInput())
			assertDeny(t, d, ReasonNoBundle)
			if !strings.Contains(d.Reasons[0], tc.want[0]) {
				t.Errorf("reason %q does not name %s", d.Reasons[0], tc.want[0])
			}
			if _, err := Test(context.Background(), dir); !errors.As(err, &be) {
				t.Errorf("Test: error %v, want a *BundleError", err)
			}
		})
	}
}

func TestMissingBundleDirDeniesEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	e, err := New(Options{Dir: dir, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "cannot read the bundle folder") {
		t.Fatalf("New: error %v, want one saying the folder cannot be read", err)
	}
	d := e.Decide(context.Background(), TypicalInput())
	assertDeny(t, d, ReasonNoBundle)
	if !strings.Contains(d.Reasons[0], dir) {
		t.Errorf("reason %q does not name the folder", d.Reasons[0])
	}
	if d.Bundle != "" {
		t.Errorf("bundle = %q, want empty", d.Bundle)
	}
}

func TestBundleWithoutRegoIsRefused(t *testing.T) {
	_, err := New(Options{Dir: filepath.Join("testdata", "empty"), Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "holds no .rego file") {
		t.Fatalf("New: error %v, want one saying there is no .rego file", err)
	}
}

func TestBundleWithConfigProblemsIsRefused(t *testing.T) {
	_, err := New(Options{Dir: filepath.Join("testdata", "bad_config"), Logger: testLogger(t)})
	var be *BundleError
	if !errors.As(err, &be) || len(be.Problems) != 1 || be.Problems[0].Message != "reins.config.limit must be a number" {
		t.Fatalf("New: error %v, want the bundle's config problem", err)
	}
	if want := filepath.Join("testdata", "bad_config", "data.json"); be.Problems[0].File != want {
		t.Errorf("problem file = %q, want %q", be.Problems[0].File, want)
	}
}

func TestFailuresDenyWithTheirReason(t *testing.T) {
	for _, tc := range []struct {
		dir, reason, detail string
	}{
		{"undefined", ReasonUndefined, "no rule matched"},
		{"divzero", ReasonEvalError, "divide by zero"},
		{"conflict", ReasonEvalError, "eval_conflict_error"},
		{"malformed_effect", ReasonMalformed, `effect "yes" is not one of "allow", "cosign", "deny"`},
		{"malformed_approvers", ReasonMalformed, "approvers is 0; a cosign needs at least 1"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			e := newEngine(t, Options{Dir: filepath.Join("testdata", tc.dir)})
			d := e.Decide(context.Background(), TypicalInput())
			assertDeny(t, d, tc.reason)
			if !strings.Contains(d.Reasons[0], tc.detail) {
				t.Errorf("reason %q does not contain %q", d.Reasons[0], tc.detail)
			}
			if d.Bundle != e.Digest() || d.Bundle == "" {
				t.Errorf("bundle = %q, want the engine's %q", d.Bundle, e.Digest())
			}
		})
	}
}

func TestTimeoutDenies(t *testing.T) {
	e := newEngine(t, Options{Dir: filepath.Join("testdata", "slow"), EvalTimeout: 20 * time.Millisecond})
	start := time.Now()
	d := e.Decide(context.Background(), TypicalInput())
	assertDeny(t, d, ReasonTimeout)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Decide took %s with a 20ms bound", el)
	}
}

func TestCallerDeadlineDenies(t *testing.T) {
	e := newEngine(t, Options{Dir: filepath.Join("testdata", "slow"), EvalTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	d := e.Decide(ctx, TypicalInput())
	assertDeny(t, d, ReasonCancelled)
	if !strings.Contains(d.Reasons[0], "deadline exceeded") {
		t.Errorf("reason %q does not say the deadline passed", d.Reasons[0])
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Decide took %s with a 20ms deadline", el)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	assertDeny(t, newEngine(t, Options{}).Decide(ctx, TypicalInput()), ReasonCancelled)
}

// askUntilCancelled asks d until it says cancelled and returns how many
// questions that took, failing past limit.
func askUntilCancelled(t *testing.T, d *deadline, limit int) int {
	t.Helper()
	for n := 1; n <= limit; n++ {
		if d.Cancelled() {
			return n
		}
	}
	t.Fatalf("not cancelled after %d questions", limit)
	return 0
}

func TestDeadline(t *testing.T) {
	d := &deadline{ctx: context.Background(), end: time.Now().Add(time.Hour)}
	for range 3 * deadlineEvery {
		if d.Cancelled() {
			t.Fatal("cancelled an hour before the deadline")
		}
	}
	d.Cancel()
	if !d.Cancelled() || d.expired.Load() {
		t.Fatalf("after Cancel: cancelled %v, expired %v; want true, false", d.Cancelled(), d.expired.Load())
	}

	d = &deadline{ctx: context.Background(), end: time.Now().Add(-time.Millisecond)}
	askUntilCancelled(t, d, deadlineEvery)
	if !d.expired.Load() {
		t.Error("the deadline passed but expired is false")
	}
	if !d.Cancelled() {
		t.Error("a passed deadline stopped saying cancelled")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d = &deadline{ctx: ctx, end: time.Now().Add(time.Hour)}
	askUntilCancelled(t, d, deadlineEvery)
	if d.expired.Load() {
		t.Error("an ended context counts as the engine's timeout")
	}
}

func TestUnknownActionDeniesWhateverThePolicy(t *testing.T) {
	// The failing_tests bundle allows everything.
	e := newEngine(t, Options{Dir: filepath.Join("testdata", "failing_tests")})
	in := TypicalInput()
	in.Step.Action = "kubernetes.explode"
	assertDeny(t, e.Decide(context.Background(), in), ReasonUnknownAction)
	in.Step.Action = ""
	assertDeny(t, e.Decide(context.Background(), in), ReasonUnknownAction)
}

// bundle writes a one-file bundle whose decision has the given effect.
func allowOrDeny(effect string) map[string]string {
	return map[string]string{
		"decision.rego": "package reins.policy\n\ndecision := {\"effect\": \"" + effect + "\", \"risk\": \"low\", \"reasons\": [\"" + effect + " by test\"]}\n",
		"data.json":     "{}\n",
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, allowOrDeny("allow"))
	var logs syncBuffer
	e := newEngine(t, Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	first := e.Digest()
	if d := e.Decide(ctx, TypicalInput()); d.Effect != remediation.EffectAllow || d.Bundle != first {
		t.Fatalf("before reload: %+v, want allow from %s", d, first)
	}

	// A good change is in force after Reload, without a new Engine.
	writeFiles(t, dir, allowOrDeny("deny"))
	if err := e.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	second := e.Digest()
	if second == first {
		t.Fatal("digest unchanged after the bundle changed")
	}
	if d := e.Decide(ctx, TypicalInput()); d.Effect != remediation.EffectDeny || d.Reasons[0] != "deny by test" || d.Bundle != second {
		t.Fatalf("after reload: %+v, want the new bundle's deny", d)
	}

	// A bad change is refused with file:line; the last good bundle stays.
	writeFiles(t, dir, map[string]string{"decision.rego": "package reins.policy\n\ndecision := {\"effect\": }\n\nx := 1\n"})
	err := e.Reload(ctx)
	var be *BundleError
	if !errors.As(err, &be) || !strings.HasPrefix(be.Problems[0].String(), filepath.Join(dir, "decision.rego")+":3") {
		t.Fatalf("Reload of a broken bundle: %v, want a *BundleError at decision.rego:3", err)
	}
	if e.Digest() != second {
		t.Fatalf("digest = %s after a bad reload, want the last good %s", e.Digest(), second)
	}
	if d := e.Decide(ctx, TypicalInput()); d.Reasons[0] != "deny by test" {
		t.Fatalf("after a bad reload: %+v, want the last good bundle's decision", d)
	}
	if !errors.Is(e.Err(), err) {
		t.Errorf("Err() = %v, want the reload error", e.Err())
	}
	if !strings.Contains(logs.String(), "policy bundle refused; the last good bundle stays in force") || !strings.Contains(logs.String(), "decision.rego:3") {
		t.Errorf("logs do not report the refused bundle with file:line:\n%s", logs.String())
	}

	// Fixing it clears the error.
	writeFiles(t, dir, allowOrDeny("allow"))
	if err := e.Reload(ctx); err != nil || e.Err() != nil || e.Digest() != first {
		t.Fatalf("Reload of the fixed bundle: %v, Err %v, digest %s; want the first bundle back", err, e.Err(), e.Digest())
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, allowOrDeny("allow"))
	var logs syncBuffer
	e := newEngine(t, Options{Dir: dir, PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := e.Digest()
	writeFiles(t, dir, allowOrDeny("deny"))
	waitFor("the new bundle", func() bool { return e.Digest() != first })
	if d := e.Decide(ctx, TypicalInput()); d.Effect != remediation.EffectDeny {
		t.Fatalf("after the change: %+v, want deny", d)
	}
	second := e.Digest()

	writeFiles(t, dir, map[string]string{"decision.rego": "package reins.policy\n\ndecision := {\"effect\": }\n\nx := 1\n"})
	waitFor("the refusal", func() bool { return e.Err() != nil })
	if e.Digest() != second {
		t.Fatalf("digest %s after a bad change, want the last good %s", e.Digest(), second)
	}
	// The bad bundle is logged once, not at every poll.
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "policy bundle refused"); n != 1 {
		t.Errorf("the refused bundle was logged %d times, want once:\n%s", n, logs.String())
	}

	writeFiles(t, dir, allowOrDeny("allow"))
	waitFor("the fixed bundle", func() bool { return e.Err() == nil && e.Digest() == first })
}

func TestWatchEmbeddedReturns(t *testing.T) {
	if err := newEngine(t, Options{}).Watch(context.Background()); err != nil {
		t.Fatalf("Watch with the embedded bundle: %v", err)
	}
}

func TestConcurrentDecideAndReload(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, allowOrDeny("allow"))
	e := newEngine(t, Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				d := e.Decide(ctx, TypicalInput())
				if d.Effect != remediation.EffectAllow && d.Effect != remediation.EffectDeny {
					t.Errorf("decision %+v", d)
				}
			}
		})
	}
	for i := range 20 {
		writeFiles(t, dir, allowOrDeny([]string{"allow", "deny"}[i%2]))
		if err := e.Reload(ctx); err != nil {
			t.Errorf("Reload: %v", err)
		}
	}
	wg.Wait()
}

func TestDigest(t *testing.T) {
	files := []bundleFile{{Name: "a.rego", Data: []byte("x")}, {Name: "data.json", Data: []byte("{}")}}
	d := bundleDigest(files)
	if len(d) != 64 {
		t.Fatalf("digest %q is not hex SHA-256", d)
	}
	for name, other := range map[string][]bundleFile{
		"renamed":  {{Name: "b.rego", Data: []byte("x")}, {Name: "data.json", Data: []byte("{}")}},
		"changed":  {{Name: "a.rego", Data: []byte("y")}, {Name: "data.json", Data: []byte("{}")}},
		"removed":  {{Name: "a.rego", Data: []byte("x")}},
		"boundary": {{Name: "a.rego", Data: []byte("xdata.json")}, {Name: "", Data: []byte("{}")}},
	} {
		if bundleDigest(other) == d {
			t.Errorf("%s: same digest", name)
		}
	}

	// The default bundle written out has the embedded bundle's digest.
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := WriteDefaultBundle(dir); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{Dir: dir})
	if e.Digest() != DefaultDigest() {
		t.Fatalf("written-out bundle digest %s, want the embedded %s", e.Digest(), DefaultDigest())
	}
	// Files that are not part of a bundle do not change it.
	writeFiles(t, dir, map[string]string{"README.md": "notes", ".hidden.rego": "junk"})
	if err := os.Mkdir(filepath.Join(dir, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(dir, "testdata"), map[string]string{"x.rego": "junk"})
	if err := e.Reload(context.Background()); err != nil || e.Digest() != DefaultDigest() {
		t.Fatalf("after adding non-bundle files: %v, digest %s", err, e.Digest())
	}
}

func TestWriteDefaultBundleNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"data.json": `{"mine": true}`})
	if err := WriteDefaultBundle(dir); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("WriteDefaultBundle over an existing file: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "data.json"))
	if string(data) != `{"mine": true}` {
		t.Fatalf("data.json was overwritten: %s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files were written: %v", entries)
	}
	if err := WriteDefaultBundle(""); err == nil {
		t.Fatal("WriteDefaultBundle(\"\") succeeded")
	}
}

func TestSymlinkedBundle(t *testing.T) {
	// A Kubernetes ConfigMap volume: files are symlinks into a hidden folder.
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_06_01")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, data, allowOrDeny("allow"))
	for _, name := range []string{"decision.rego", "data.json"} {
		if err := os.Symlink(filepath.Join(data, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	e := newEngine(t, Options{Dir: dir})
	if d := e.Decide(context.Background(), TypicalInput()); d.Effect != remediation.EffectAllow {
		t.Fatalf("symlinked bundle: %+v", d)
	}
}

func TestKnownActionsMatchRemediation(t *testing.T) {
	for _, s := range remediation.Actions() {
		if !knownAction(s.Action) {
			t.Errorf("knownAction(%q) = false; add it", s.Action)
		}
	}
	if knownAction("kubernetes.explode") || knownAction("") {
		t.Error("knownAction accepts unknown actions")
	}
}
