package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

const intakeToken = "alertmanager-token-0123456789"

func (s *memorySink) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.recs))
	for i, r := range s.recs {
		out[i] = r.Type
	}
	return out
}

// fakeTemporal starts each workflow ID once.
type fakeTemporal struct {
	mu      sync.Mutex
	started map[string]bool
	down    bool
}

func (s *fakeTemporal) Start(_ context.Context, p remediation.Plan) (string, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", "", false, errors.New("connection refused")
	}
	id := p.WorkflowID()
	joined := s.started[id]
	s.started[id] = true
	return id, "run", joined, nil
}

func (s *fakeTemporal) SignalResolved(_ context.Context, id string, _ workflows.IncidentResolved) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started[id], nil
}

const intakeTriggers = `
triggers:
  - name: replicas
    match: {type: KubeDeploymentReplicasMismatch}
    playbook:
      environment: production
      explanation: 'scale {{ .labels.deployment }}'
      steps:
        - {action: kubernetes.scale, target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ .labels.deployment }}'}, params: {replicas: 3}, justification: back to 3}
  - name: cart
    match: {kind: cloudevent, type: com.example.cart.down}
    playbook:
      environment: staging
      explanation: restart cart
      steps:
        - {action: kubernetes.rollout-restart, target: {namespace: shop, kind: Deployment, name: cart}, justification: it is down}
`

func intakeServer(t *testing.T, limits intake.Limits) (*httptest.Server, *fakeTemporal, *memorySink, *Intake) {
	t.Helper()
	d, tmp, sink := intakeDispatcher(t)
	srv, in := serveIntake(t, IntakeOptions{Dispatcher: d, Limits: limits})
	return srv, tmp, sink, in
}

// intakeDispatcher dispatches with the test triggers to a fake Temporal,
// recording in a memory sink.
func intakeDispatcher(t *testing.T) (*intake.Dispatcher, *fakeTemporal, *memorySink) {
	t.Helper()
	dir := t.TempDir()
	if err := writeFile(filepath.Join(dir, "t.yaml"), intakeTriggers); err != nil {
		t.Fatal(err)
	}
	cfgs, err := intake.LoadTriggersFile(filepath.Join(dir, "t.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	triggers, err := intake.Compile(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	sink := &memorySink{}
	rec, err := NewRecorder([]AuditSink{sink}, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	tmp := &fakeTemporal{started: map[string]bool{}}
	d, err := intake.NewDispatcher(triggers, tmp, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, tmp, sink
}

// serveIntake serves a gateway with the intake of opts, which accepts intakeToken.
func serveIntake(t *testing.T, opts IntakeOptions) (*httptest.Server, *Intake) {
	t.Helper()
	gw, _ := newServer(t)
	sum := sha256.Sum256([]byte(intakeToken))
	opts.TokenSHA256 = [][]byte{sum[:]}
	in, err := NewIntake(opts)
	if err != nil {
		t.Fatal(err)
	}
	in.Mount(gw)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); in.Close() })
	return srv, in
}

func amPost(fps ...string) string {
	alerts := make([]string, len(fps))
	for i, fp := range fps {
		alerts[i] = fmt.Sprintf(`{"status":"firing","fingerprint":%q,"labels":{"alertname":"KubeDeploymentReplicasMismatch","namespace":"shop","deployment":"checkout"}}`, fp)
	}
	return `{"version":"4","status":"firing","externalURL":"http://am","alerts":[` + strings.Join(alerts, ",") + `]}`
}

func send(t *testing.T, srv *httptest.Server, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return roundTrip(t, req)
}

var bearer = map[string]string{"Authorization": "Bearer " + intakeToken}

func TestIntakeAlertmanager(t *testing.T) {
	srv, tmp, sink, in := intakeServer(t, intake.Limits{})
	resp, body := send(t, srv, PathAlertmanager, amPost("fp1", "fp2", "fp1"), bearer)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	var got IntakeResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	results := map[intake.Result]int{}
	for _, e := range got.Events {
		results[e.Result]++
		if e.Trigger != "replicas" || !strings.HasPrefix(e.Remediation, "reins-replicas-fp") {
			t.Errorf("event result %+v", e)
		}
	}
	if len(got.Events) != 3 || results[intake.ResultStarted] != 2 || results[intake.ResultDuplicate] != 1 || len(tmp.started) != 2 {
		t.Errorf("results %+v, %d started", got.Events, len(tmp.started))
	}
	in.Close()
	types := sink.types()
	count := map[string]int{}
	for _, typ := range types {
		count[typ]++
	}
	if count[AuditEventStarted] != 2 || count[AuditEventDuplicate] != 1 || len(types) != 3 {
		t.Errorf("audit records %v", types)
	}
}

func TestIntakeCloudEvents(t *testing.T) {
	srv, tmp, _, _ := intakeServer(t, intake.Limits{})
	structured := `{"specversion":"1.0","type":"com.example.cart.down","source":"urn:m","id":"1"}`
	h := map[string]string{"Authorization": bearer["Authorization"], "Content-Type": intake.CloudEventsMediaType}
	if resp, body := send(t, srv, PathCloudEvents, structured, h); resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"result":"started"`) {
		t.Fatalf("structured: %s %s", resp.Status, body)
	}
	binary := map[string]string{"Authorization": bearer["Authorization"], "Content-Type": "application/json",
		"ce-specversion": "1.0", "ce-type": "com.example.cart.down", "ce-source": "urn:m", "ce-id": "2"}
	if resp, body := send(t, srv, PathCloudEvents, `{"labels":{}}`, binary); resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"result":"started"`) {
		t.Fatalf("binary: %s %s", resp.Status, body)
	}
	if len(tmp.started) != 2 {
		t.Errorf("%d started, want 2 (source+id differ)", len(tmp.started))
	}
	// No trigger: 202, nothing started, the reason given.
	other := strings.Replace(structured, "cart.down", "other", 1)
	if resp, body := send(t, srv, PathCloudEvents, other, h); resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"result":"unmatched"`) {
		t.Fatalf("unmatched: %s %s", resp.Status, body)
	}
	if len(tmp.started) != 2 {
		t.Errorf("an unmatched event started a remediation")
	}
}

func TestIntakeRefuses(t *testing.T) {
	srv, tmp, sink, _ := intakeServer(t, intake.Limits{MaxBodyBytes: 4096})
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		header map[string]string
		status int
		field  string
	}{
		{"no token", PathAlertmanager, amPost("a"), nil, http.StatusUnauthorized, ""},
		{"wrong token", PathAlertmanager, amPost("a"), map[string]string{"Authorization": "Bearer " + token}, http.StatusUnauthorized, ""},
		{"version 3", PathAlertmanager, strings.Replace(amPost("a"), `"4"`, `"3"`, 1), bearer, http.StatusBadRequest, "version"},
		{"bad fingerprint", PathAlertmanager, amPost("a b"), bearer, http.StatusBadRequest, "alerts[0].fingerprint"},
		{"too large", PathAlertmanager, amPost(strings.Split(strings.Repeat("f,", 100), ",")...), bearer, http.StatusRequestEntityTooLarge, ""},
		{"not a CloudEvent", PathCloudEvents, `{}`, map[string]string{"Authorization": bearer["Authorization"], "Content-Type": "application/json"}, http.StatusUnsupportedMediaType, ""},
		{"CloudEvent without id", PathCloudEvents, `{"specversion":"1.0","type":"t","source":"s"}`, map[string]string{"Authorization": bearer["Authorization"], "Content-Type": intake.CloudEventsMediaType}, http.StatusBadRequest, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, srv, tc.path, tc.body, tc.header)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != ProblemMediaType {
				t.Fatalf("%s %s, want %d problem", resp.Status, body, tc.status)
			}
			var p Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Errorf("problem %+v, want an error on %s", p, tc.field)
			}
		})
	}
	if len(tmp.started) != 0 {
		t.Errorf("%d remediations started by refused requests", len(tmp.started))
	}
	types := sink.types()
	if len(types) != 7 {
		t.Errorf("%d records %v, want one refused record per request", len(types), types)
	}
	for _, typ := range types {
		if typ != AuditEventRefused {
			t.Errorf("record %s, want %s", typ, AuditEventRefused)
		}
	}
}

func TestIntakeUnauthenticatedFloodIsRecordedWithinBudget(t *testing.T) {
	srv, tmp, sink, _ := intakeServer(t, intake.Limits{})
	const flood = 150
	began := time.Now()
	for i := range flood {
		if resp, body := send(t, srv, PathAlertmanager, amPost("a"), map[string]string{"Authorization": fmt.Sprintf("Bearer forged-%d", i)}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged token %d: %s %s", i, resp.Status, body)
		}
	}
	if n, most := len(sink.types()), budgetAllows(time.Since(began)); n < 20 || n > most {
		t.Fatalf("%d records for %d unauthenticated posts, want the budget's burst of 20 and its refills (at most %d)", n, flood, most)
	}
	if len(tmp.started) != 0 {
		t.Fatalf("%d remediations started by unauthenticated posts", len(tmp.started))
	}
}

func TestIntakeTemporalDown(t *testing.T) {
	srv, tmp, _, _ := intakeServer(t, intake.Limits{})
	tmp.down = true
	resp, body := send(t, srv, PathAlertmanager, amPost("fp1"), bearer)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("%s %s, want 503 with Retry-After", resp.Status, body)
	}
	tmp.down = false
	if resp, body := send(t, srv, PathAlertmanager, amPost("fp1"), bearer); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after Temporal is back: %s %s", resp.Status, body)
	}
}

func TestIntakeIsMounted(t *testing.T) {
	srv, _, _, _ := intakeServer(t, intake.Limits{})
	resp, err := http.Get(srv.URL + PathAlertmanager)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s, want 405", resp.Status)
	}
	if _, err := NewIntake(IntakeOptions{}); err == nil {
		t.Error("no dispatcher: no error")
	}
}

// startNATS starts an embedded NATS server with JetStream, and a JetStream
// client of it, until the test ends.
func startNATS(t *testing.T, ctx context.Context, logger *slog.Logger) (*devstack.NATS, jetstream.JetStream) {
	t.Helper()
	ns, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ns, js
}

// Queued delivery: the events a trigger takes are answered "queued" once
// JetStream stored them, and the consumer starts their remediations; an
// identical event is stored once and answered "duplicate"; a bad payload
// and an unmatched event are answered as in direct delivery and nothing
// of them is queued.
func TestIntakeQueued(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	ns, js := startNATS(t, ctx, logger)
	d, tmp, sink := intakeDispatcher(t)
	opts := intake.ConsumerOptions{URL: ns.URL, Stream: "EVENTS", Subject: "events.>", Durable: "gateway", CreateStream: true, Logger: logger}
	cons, err := intake.NewConsumer(ctx, opts, d)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
	}()
	q, err := intake.NewQueue(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	srv, in := serveIntake(t, IntakeOptions{Dispatcher: d, Queue: q})

	stored := func() uint64 {
		t.Helper()
		s, err := js.Stream(ctx, "EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	resp, body := send(t, srv, PathAlertmanager, amPost("fp1", "fp2", "fp1"), bearer)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	var got IntakeResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := []intake.Result{intake.ResultQueued, intake.ResultQueued, intake.ResultDuplicate}
	for i, e := range got.Events {
		if i >= len(want) || e.Result != want[i] || e.Trigger != "replicas" || e.Remediation != (remediation.Plan{Incident: remediation.Incident{Source: "replicas", Fingerprint: e.Fingerprint}}).WorkflowID() {
			t.Errorf("event %d: %+v, want %s with its remediation", i, e, want[min(i, len(want)-1)])
		}
	}
	if len(got.Events) != 3 || stored() != 2 {
		t.Errorf("%d results, %d messages stored; want 3 results, 2 messages", len(got.Events), stored())
	}
	waitCond(t, "the consumer starts both remediations", func() bool {
		tmp.mu.Lock()
		defer tmp.mu.Unlock()
		return len(tmp.started) == 2
	})

	// Refused whole: nothing of it is queued.
	if resp, body := send(t, srv, PathAlertmanager, amPost("fp3", "a b"), bearer); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad fingerprint: %s %s, want 400", resp.Status, body)
	}
	other := `{"specversion":"1.0","type":"com.example.other","source":"urn:m","id":"1"}`
	h := map[string]string{"Authorization": bearer["Authorization"], "Content-Type": intake.CloudEventsMediaType}
	if resp, body := send(t, srv, PathCloudEvents, other, h); resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"result":"unmatched"`) {
		t.Errorf("unmatched: %s %s", resp.Status, body)
	}
	if n := stored(); n != 2 {
		t.Errorf("%d messages stored after a refused and an unmatched event, want 2", n)
	}
	waitCond(t, "every event recorded", func() bool {
		count := map[string]int{}
		for _, typ := range sink.types() {
			count[typ]++
		}
		return count[AuditEventStarted] == 2 && count[AuditEventDuplicate] == 1 && count[AuditEventRefused] == 1 && count[AuditEventUnmatched] == 1
	})
	in.Close()
	if types := sink.types(); len(types) != 5 {
		t.Errorf("records %v, want 2 started, 1 duplicate, 1 refused, 1 unmatched", types)
	}
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// Queued delivery records an unmatched event only once the request's other
// events are queued: a request answered 503 because JetStream did not store
// them has recorded nothing, so that sending it again records it once.
func TestIntakeQueuedRecordsOnlyAfterThePublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	ns, js := startNATS(t, ctx, logger)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	d, _, sink := intakeDispatcher(t)
	q, err := intake.NewQueue(ctx, intake.ConsumerOptions{URL: ns.URL, Stream: "EVENTS", Subject: "events.>", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := serveIntake(t, IntakeOptions{Dispatcher: d, Queue: q})
	post := `{"version":"4","status":"firing","externalURL":"http://am","alerts":[
		{"status":"firing","fingerprint":"fp-q","labels":{"alertname":"KubeDeploymentReplicasMismatch","namespace":"shop","deployment":"checkout"}},
		{"status":"firing","fingerprint":"fp-noise","labels":{"alertname":"Noise"}}]}`

	// JetStream unreachable: 503, and nothing recorded.
	q.Close()
	if resp, body := send(t, srv, PathAlertmanager, post, bearer); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("publish failed: %s %s, want 503", resp.Status, body)
	}
	if types := sink.types(); len(types) != 0 {
		t.Fatalf("records %v after a failed publish, want none", types)
	}

	// Sent again to a working queue: the unmatched event is recorded once.
	q, err = intake.NewQueue(ctx, intake.ConsumerOptions{URL: ns.URL, Stream: "EVENTS", Subject: "events.>", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	srv, in := serveIntake(t, IntakeOptions{Dispatcher: d, Queue: q})
	resp, body := send(t, srv, PathAlertmanager, post, bearer)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"result":"queued"`) || !strings.Contains(string(body), `"result":"unmatched"`) {
		t.Fatalf("sent again: %s %s", resp.Status, body)
	}
	in.Close()
	if types := sink.types(); !slices.Equal(types, []string{AuditEventUnmatched}) {
		t.Errorf("records %v, want the unmatched event's once", types)
	}
}
