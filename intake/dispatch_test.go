package intake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// fakeTemporal keeps remediations by workflow ID, as the conflict policy
// "use existing" would.
type fakeTemporal struct {
	mu       sync.Mutex
	running  map[string]remediation.Plan
	signals  map[string][]workflows.IncidentResolved
	starts   int
	failNext int
	// delay is how long each Start takes; a Start whose context ends first fails.
	delay time.Duration
}

var errUnavailable = errors.New("temporal unavailable")

func newFakeTemporal() *fakeTemporal {
	return &fakeTemporal{running: map[string]remediation.Plan{}, signals: map[string][]workflows.IncidentResolved{}}
}

func (f *fakeTemporal) Start(ctx context.Context, p remediation.Plan) (string, string, bool, error) {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return "", "", false, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return "", "", false, errUnavailable
	}
	if err := p.Validate(); err != nil {
		return "", "", false, err
	}
	id := p.WorkflowID()
	if _, ok := f.running[id]; ok {
		return id, "run-" + id, true, nil
	}
	f.starts++
	f.running[id] = p
	return id, "run-" + id, false, nil
}

func (f *fakeTemporal) SignalResolved(_ context.Context, id string, sig workflows.IncidentResolved) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return false, errUnavailable
	}
	if _, ok := f.running[id]; !ok {
		return false, nil
	}
	f.signals[id] = append(f.signals[id], sig)
	return true, nil
}

func (f *fakeTemporal) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

type fakeRecorder struct {
	mu   sync.Mutex
	recs []Outcome
	fail bool
	// maxPayload, when set, refuses a record whose JSON (as
	// remediation.AuditData writes it) is longer, as the NATS audit sink does.
	maxPayload int
}

func (r *fakeRecorder) RecordIntake(_ context.Context, o Outcome) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("audit sink down")
	}
	if r.maxPayload > 0 {
		data, err := remediation.AuditData(o)
		if err != nil {
			return err
		}
		if len(data) > r.maxPayload {
			return fmt.Errorf("audit nats: publish: %w", nats.ErrMaxPayload)
		}
	}
	r.recs = append(r.recs, o)
	return nil
}

func (r *fakeRecorder) results() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Result, len(r.recs))
	for i, o := range r.recs {
		out[i] = o.Result
	}
	return out
}

func dispatcher(t *testing.T) (*Dispatcher, *fakeTemporal, *fakeRecorder) {
	t.Helper()
	tmp, rec := newFakeTemporal(), &fakeRecorder{}
	d, err := NewDispatcher(compileYAML(t, triggersYAML), tmp, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, tmp, rec
}

func firing(fp string) Event {
	ev := alert(map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "severity": "critical", "namespace": "shop-eu", "deployment": "checkout"})
	ev.Fingerprint = fp
	return ev
}

func TestDispatch(t *testing.T) {
	d, tmp, rec := dispatcher(t)
	ctx := context.Background()

	// The intake's ID: reins-<trigger>-<fingerprint>-<hash of the pair>.
	id := remediation.Plan{Incident: remediation.Incident{Source: "replicas-mismatch", Fingerprint: "fp1"}}.WorkflowID()
	if !strings.HasPrefix(id, "reins-replicas-mismatch-fp1-") {
		t.Fatalf("the intake's ID %s", id)
	}
	o, err := d.Dispatch(ctx, firing("fp1"))
	if err != nil || o.Result != ResultStarted || o.Remediation != id || o.Trigger != "replicas-mismatch" {
		t.Fatalf("first event: %+v, %v", o, err)
	}
	if len(rec.results()) != 0 {
		t.Errorf("a start is recorded by Record, after the ack; got records %v", rec.results())
	}
	d.Record(ctx, o)
	o, err = d.Dispatch(ctx, firing("fp1"))
	if err != nil || o.Result != ResultDuplicate || o.Remediation != id {
		t.Fatalf("duplicate: %+v, %v", o, err)
	}
	d.Record(ctx, o)

	resolved := firing("fp1")
	resolved.Status = StatusResolved
	o, err = d.Dispatch(ctx, resolved)
	if err != nil || o.Result != ResultResolved || len(tmp.signals[id]) != 1 {
		t.Fatalf("resolved: %+v, %v, signals %v", o, err, tmp.signals)
	}
	if sig := tmp.signals[id][0]; sig.Trigger != "replicas-mismatch" || sig.Fingerprint != "fp1" || sig.At.IsZero() {
		t.Errorf("signal %+v", sig)
	}
	d.Record(ctx, o)
	resolved.Fingerprint = "fp-never-started"
	if o, err = d.Dispatch(ctx, resolved); err != nil || o.Result != ResultResolvedIdle {
		t.Fatalf("resolved without a remediation: %+v, %v", o, err)
	}

	unmatched := firing("fp2")
	unmatched.Labels["severity"] = "info"
	if o, err = d.Dispatch(ctx, unmatched); err != nil || o.Result != ResultUnmatched || o.Trigger != "" {
		t.Fatalf("unmatched: %+v, %v", o, err)
	}
	d.Record(ctx, o) // already recorded: no second record

	missing := firing("fp3")
	delete(missing.Labels, "deployment")
	if o, err = d.Dispatch(ctx, missing); err != nil || o.Result != ResultRefused || len(o.Errors) != 1 || !strings.Contains(o.Reason, "deployment") {
		t.Fatalf("refused: %+v, %v", o, err)
	}

	if tmp.startCount() != 1 {
		t.Errorf("%d remediations started, want 1", tmp.startCount())
	}
	want := []Result{ResultStarted, ResultDuplicate, ResultResolved, ResultResolvedIdle, ResultUnmatched, ResultRefused}
	if got := rec.results(); !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
	if got := rec.recs[4].Event; got.Fingerprint != "fp2" || len(got.Labels) != 4 || got.Labels[0].Name != "alertname" {
		t.Errorf("the unmatched record's event: %+v", got)
	}
}

func TestDispatchFailures(t *testing.T) {
	d, tmp, rec := dispatcher(t)
	ctx := context.Background()
	tmp.failNext = 1
	if _, err := d.Dispatch(ctx, firing("fp1")); !errors.Is(err, errUnavailable) {
		t.Fatalf("Temporal down: %v", err)
	}
	if len(rec.results()) != 0 || tmp.startCount() != 0 {
		t.Errorf("Temporal down: records %v, %d starts", rec.results(), tmp.startCount())
	}
	// An outcome that is only its record fails when the record does.
	rec.fail = true
	unmatched := firing("fp2")
	unmatched.Kind = KindCloudEvent
	if _, err := d.Dispatch(ctx, unmatched); err == nil {
		t.Error("unmatched with the audit sink down: no error")
	}
	if _, err := d.Refuse(ctx, KindCloudEvent, ViaNATS, &InvalidError{Kind: KindCloudEvent, Errors: []FieldError{{Field: "id", Message: "x"}}}); err == nil {
		t.Error("refused with the audit sink down: no error")
	}
	// A start does not wait for its record.
	if o, err := d.Dispatch(ctx, firing("fp3")); err != nil || o.Result != ResultStarted {
		t.Errorf("start with the audit sink down: %+v, %v", o, err)
	}
	rec.fail = false
	o, err := d.Refuse(ctx, KindAlertmanager, ViaHTTP, &InvalidError{Kind: KindAlertmanager, Errors: []FieldError{{Field: "version", Message: "x"}}})
	if err != nil || o.Result != ResultRefused || o.Errors[0].Field != "version" || rec.recs[0].Event.Kind != KindAlertmanager {
		t.Errorf("refused: %+v, %v", o, err)
	}
}

func TestNewDispatcherNeedsTriggers(t *testing.T) {
	if _, err := NewDispatcher(&Triggers{}, newFakeTemporal(), &fakeRecorder{}, nil); err == nil {
		t.Error("no triggers: no error")
	}
}
