package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// agentTemporal is a fake AgentRemediations: a started plan is Running,
// its first step already decided.
type agentTemporal struct {
	mu        sync.Mutex
	started   []remediation.Plan
	statuses  map[string]workflows.Status
	aborts    []workflows.AbortSignal
	startErr  error
	statusErr error
}

var _ AgentRemediations = (*agentTemporal)(nil)

func newAgentTemporal() *agentTemporal {
	return &agentTemporal{statuses: map[string]workflows.Status{}}
}

func (f *agentTemporal) Start(_ context.Context, p remediation.Plan) (AgentStarted, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return AgentStarted{}, f.startErr
	}
	if err := p.Validate(); err != nil {
		return AgentStarted{}, err
	}
	id := p.WorkflowID()
	if st, ok := f.statuses[id]; ok && st.State == remediation.StateRunning {
		return AgentStarted{ID: id, RunID: "run-1", Joined: true}, nil
	}
	f.started = append(f.started, p)
	f.statuses[id] = workflows.Status{ID: id, State: remediation.StateRunning, Requester: p.Requester.String(),
		Steps: []workflows.StepStatus{{Index: 0, State: remediation.StepAwaitingApproval,
			Decision: &remediation.Decision{Effect: remediation.EffectCosign, Approvers: 1, Group: "sre", Risk: remediation.RiskHigh, Reasons: []string{"production"}}}}}
	return AgentStarted{ID: id, RunID: "run-1"}, nil
}

func (f *agentTemporal) Status(_ context.Context, id string) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusErr != nil {
		return workflows.Status{}, f.statusErr
	}
	st, ok := f.statuses[id]
	if !ok {
		return st, fmt.Errorf("%w: %s", ErrRemediationNotFound, id)
	}
	return st, nil
}

func (f *agentTemporal) Abort(_ context.Context, id string, sig workflows.AbortSignal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.statuses[id]; !ok || st.State != remediation.StateRunning {
		return ErrRemediationEnded
	}
	f.aborts = append(f.aborts, sig)
	return nil
}

func (f *agentTemporal) plans() []remediation.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started)
}

func (f *agentTemporal) setState(id string, s remediation.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.statuses[id]
	st.State = s
	f.statuses[id] = st
}

// agentSink reads the agent door's records.
type agentSink struct{ memorySink }

// records returns the records so far with their decoded data.
func (s *agentSink) records(t testing.TB) ([]string, []agentAudit) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	types := make([]string, len(s.recs))
	data := make([]agentAudit, len(s.recs))
	for i, r := range s.recs {
		types[i] = r.Type
		if err := json.Unmarshal(r.Data, &data[i]); err != nil {
			t.Fatal(err)
		}
	}
	return types, data
}

// last returns the type and data of the last record.
func (s *agentSink) last(t testing.TB) (string, agentAudit) {
	t.Helper()
	types, data := s.records(t)
	if len(types) == 0 {
		t.Fatal("no audit record")
	}
	return types[len(types)-1], data[len(data)-1]
}

// Tokens of the test clients.
const (
	fixerToken  = "fixer-token-0123456789"
	otherToken  = "other-token-0123456789"
	oncallToken = "oncall-token-0123456789"
	slowToken   = "slow-token-0123456789"
)

type agentEnv struct {
	srv      *httptest.Server
	mux      *http.ServeMux
	temporal *agentTemporal
	sink     *agentSink
	api      *AgentAPI
}

func newAgentEnv(t testing.TB) *agentEnv {
	t.Helper()
	clients, err := NewClients([]Client{
		{Principal: Principal{Name: "fixer", Kind: KindAgent, Owner: "alice@example.com"}, TokenSHA256: mustHash(t, fixerToken), Rate: "unlimited"},
		{Principal: Principal{Name: "other", Kind: KindAgent}, TokenSHA256: mustHash(t, otherToken), Rate: "unlimited"},
		{Principal: Principal{Name: "oncall@example.com", Kind: KindHuman, Groups: []string{"sre"}}, TokenSHA256: mustHash(t, oncallToken), Rate: "unlimited"},
		{Principal: Principal{Name: "slow", Kind: KindAgent}, TokenSHA256: mustHash(t, slowToken), Rate: "1/h", Burst: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := &agentSink{}
	rec, err := NewRecorder([]AuditSink{sink}, "default", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tmp := newAgentTemporal()
	api, err := NewAgentAPI(AgentAPIOptions{Remediations: tmp, Auth: clients, Limiter: clients, Recorder: rec,
		TemporalUI: "http://localhost:8233/", Namespace: "default", DecisionWait: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &agentEnv{srv: srv, mux: mux, temporal: tmp, sink: sink, api: api}
}

// call sends a request with the token ("" for none) and JSON body.
func (e *agentEnv) call(t testing.TB, method, path, token, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return roundTrip(t, req)
}

func (e *agentEnv) post(t testing.TB, path, token string, body []byte) (*http.Response, []byte) {
	t.Helper()
	return e.call(t, http.MethodPost, path, token, "application/json", body)
}

// agentPlan is a valid plan without requester, as JSON.
func agentPlan(fingerprint string) map[string]any {
	return map[string]any{
		"incident":    map[string]any{"source": "alertmanager", "fingerprint": fingerprint},
		"environment": "production",
		"explanation": "checkout has too few replicas for the traffic",
		"steps": []any{map[string]any{
			"action":        "kubernetes.scale",
			"target":        map[string]any{"namespace": "shop", "kind": "Deployment", "name": "checkout"},
			"params":        map[string]any{"replicas": 6},
			"justification": "the HPA is pinned at its maximum",
		}},
	}
}

// agentID is the ID of the remediation that agentPlan(fingerprint) starts
// when the agent client proposes it.
func agentID(client, fingerprint string) string {
	return remediation.Plan{Incident: remediation.Incident{Source: "alertmanager", Fingerprint: fingerprint},
		Requester: remediation.Requester{Kind: remediation.RequesterAgent, Name: client}}.ClientWorkflowID()
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeProblem(t testing.TB, data []byte) Problem {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("not a problem: %s", data)
	}
	return p
}

func problemFields(p Problem) []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

func TestAgentProposeStartsAsTheAuthenticatedAgent(t *testing.T) {
	e := newAgentEnv(t)
	resp, body := e.post(t, "/v1/remediations", fixerToken, mustJSON(t, agentPlan("fp-1")))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("propose: %s %s", resp.Status, body)
	}
	var out ProposeResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	id := agentID("fixer", "fp-1")
	if out.ID != id || out.RunID != "run-1" || out.Joined ||
		out.StatusURL != "/v1/remediations/"+id || resp.Header.Get("Location") != out.StatusURL ||
		out.UIURL != "http://localhost:8233/namespaces/default/workflows/"+id {
		t.Errorf("answer %+v, Location %q", out, resp.Header.Get("Location"))
	}
	plans := e.temporal.plans()
	if len(plans) != 1 {
		t.Fatalf("%d plans started", len(plans))
	}
	if want := (remediation.Requester{Kind: remediation.RequesterAgent, Name: "fixer", Owner: "alice@example.com"}); plans[0].Requester != want {
		t.Errorf("requester %+v, want %+v", plans[0].Requester, want)
	}
	typ, ev := e.sink.last(t)
	if typ != AuditAgentStarted || ev.Client != "fixer" || ev.Remediation != out.ID || ev.RunID != "run-1" || ev.PlanDigest != plans[0].Digest() || ev.Door != "api" {
		t.Errorf("audit %s %+v", typ, ev)
	}

	// An empty requester sets nothing: remediation.Plan encodes one.
	var goPlan remediation.Plan
	if err := json.Unmarshal(mustJSON(t, agentPlan("fp-go")), &goPlan); err != nil {
		t.Fatal(err)
	}
	if body := mustJSON(t, goPlan); !strings.Contains(string(body), `"requester":{}`) {
		t.Fatalf("remediation.Plan encodes %s", body)
	} else if resp, out := e.post(t, "/v1/remediations", fixerToken, body); resp.StatusCode != http.StatusAccepted {
		t.Errorf("a plan with an empty requester: %s %s", resp.Status, out)
	}
	if resp, out := e.post(t, "/v1/remediations", fixerToken, []byte(strings.Replace(string(mustJSON(t, agentPlan("fp-null"))), "{", `{"requester":null,`, 1))); resp.StatusCode != http.StatusAccepted {
		t.Errorf("a plan with a null requester: %s %s", resp.Status, out)
	}
	if got := e.temporal.plans(); len(got) != 3 || got[1].Requester.Name != "fixer" || got[2].Requester.Name != "fixer" {
		t.Errorf("started %+v", got)
	}

	// The same incident again joins the running remediation.
	resp, body = e.post(t, "/v1/remediations", fixerToken, mustJSON(t, agentPlan("fp-1")))
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != http.StatusAccepted || !out.Joined {
		t.Errorf("duplicate: %s %s", resp.Status, body)
	}
	if n := len(e.temporal.plans()); n != 3 {
		t.Errorf("duplicate started another remediation: %d", n)
	}
}

// A human client (`reins start` through the gateway) proposes as itself:
// the requester is the authenticated human, whom the two-person rule then
// keeps from co-signing the plan's steps.
func TestHumanProposeStartsAsTheHuman(t *testing.T) {
	e := newAgentEnv(t)
	resp, body := e.post(t, "/v1/remediations", oncallToken, mustJSON(t, agentPlan("fp-human")))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("propose: %s %s", resp.Status, body)
	}
	plans := e.temporal.plans()
	if want := (remediation.Requester{Kind: remediation.RequesterHuman, Name: "oncall@example.com"}); len(plans) != 1 || plans[0].Requester != want {
		t.Fatalf("started %+v, want one plan requested by %+v", plans, want)
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentStarted || ev.Client != "oncall@example.com" || ev.Kind != KindHuman {
		t.Errorf("audit %s %+v", typ, ev)
	}
}

func TestAgentProposeRefusals(t *testing.T) {
	e := newAgentEnv(t)
	withRequester := agentPlan("fp-r")
	withRequester["requester"] = map[string]any{"kind": "human", "name": "alice"}
	ownName := agentPlan("fp-n")
	ownName["requester"] = map[string]any{"name": "fixer"}
	invalid := agentPlan("fp-i")
	invalid["environment"] = "Prod!"
	invalid["steps"] = []any{map[string]any{"action": "kubernetes.scale", "target": map[string]any{"namespace": "shop", "kind": "Deployment", "name": "Bad_Name"}, "justification": "j"}}
	unknown := agentPlan("fp-u")
	unknown["priority"] = "urgent"
	requesterAndInvalid := agentPlan("fp-ri")
	requesterAndInvalid["Requester"] = map[string]any{"kind": "agent", "name": "fixer"}
	requesterAndInvalid["explanation"] = ""
	huge := agentPlan("fp-h")
	huge["explanation"] = strings.Repeat("x", remediation.MaxPlanBytes)

	for _, c := range []struct {
		name, token, contentType string
		body                     []byte
		status                   int
		fields                   []string
	}{
		{"no token", "", "application/json", mustJSON(t, agentPlan("fp-a")), http.StatusUnauthorized, nil},
		{"wrong token", "not-a-client-token", "application/json", mustJSON(t, agentPlan("fp-b")), http.StatusUnauthorized, nil},
		{"requester set", fixerToken, "application/json", mustJSON(t, withRequester), http.StatusUnprocessableEntity, []string{"requester"}},
		{"requester set to itself", fixerToken, "application/json", mustJSON(t, ownName), http.StatusUnprocessableEntity, []string{"requester"}},
		{"requester set, other key case, and invalid", fixerToken, "application/json", mustJSON(t, requesterAndInvalid), http.StatusUnprocessableEntity, []string{"requester", "explanation"}},
		{"invalid fields", fixerToken, "application/json", mustJSON(t, invalid), http.StatusUnprocessableEntity,
			[]string{"environment", "steps[0].target.name", "steps[0].params.replicas"}},
		{"unknown field", fixerToken, "application/json", mustJSON(t, unknown), http.StatusUnprocessableEntity, []string{`"priority"`}},
		{"not JSON", fixerToken, "application/json", []byte(`{"steps": [`), http.StatusUnprocessableEntity, []string{"plan"}},
		{"two objects", fixerToken, "application/json", append(mustJSON(t, agentPlan("fp-2")), mustJSON(t, agentPlan("fp-3"))...), http.StatusUnprocessableEntity, []string{"plan"}},
		{"form content type", fixerToken, "application/x-www-form-urlencoded", mustJSON(t, agentPlan("fp-c")), http.StatusUnsupportedMediaType, nil},
		{"too large", fixerToken, "application/json", mustJSON(t, huge), http.StatusRequestEntityTooLarge, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.call(t, http.MethodPost, "/v1/remediations", c.token, c.contentType, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("%s %s, want %d", resp.Status, body, c.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != ProblemMediaType {
				t.Errorf("Content-Type %q", ct)
			}
			p := decodeProblem(t, body)
			if p.Status != c.status || p.Title == "" {
				t.Errorf("problem %+v", p)
			}
			got := problemFields(p)
			for _, f := range c.fields {
				if !slices.Contains(got, f) {
					t.Errorf("fields %v do not name %s (%s)", got, f, body)
				}
			}
			if len(c.fields) == 0 && len(got) > 0 {
				t.Errorf("unexpected fields %v", got)
			}
			typ, ev := e.sink.last(t)
			if typ != AuditAgentRefused || ev.Status != c.status {
				t.Errorf("audit %s %+v", typ, ev)
			}
			if c.status == http.StatusUnauthorized && (ev.Operation != "authenticate" || ev.Remote == "") {
				t.Errorf("unauthenticated call recorded as %+v", ev)
			}
			if c.status == http.StatusUnprocessableEntity && !slices.Equal(ev.Fields, got) {
				t.Errorf("audit fields %v, problem fields %v", ev.Fields, got)
			}
		})
	}
	if n := len(e.temporal.plans()); n != 0 {
		t.Errorf("refused plans started %d remediations", n)
	}
}

func TestAgentProposeTemporalDown(t *testing.T) {
	e := newAgentEnv(t)
	e.temporal.startErr = errors.New("connection refused")
	resp, body := e.post(t, "/v1/remediations", fixerToken, mustJSON(t, agentPlan("fp-down")))
	p := decodeProblem(t, body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || strings.Contains(p.Detail, "connection refused") {
		t.Errorf("Temporal down: %s %s", resp.Status, body)
	}
	if typ, _ := e.sink.last(t); typ != AuditAgentRefused {
		t.Errorf("audit %s", typ)
	}
}

func TestAgentStatusAndAbortBelongToTheRequester(t *testing.T) {
	e := newAgentEnv(t)
	if resp, body := e.post(t, "/v1/remediations", fixerToken, mustJSON(t, agentPlan("fp-own"))); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("propose: %s %s", resp.Status, body)
	}
	path := "/v1/remediations/" + agentID("fixer", "fp-own")
	get := func(token string) (int, workflows.Status) {
		resp, body := e.call(t, http.MethodGet, path, token, "", nil)
		var st workflows.Status
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, st
	}
	if code, st := get(fixerToken); code != http.StatusOK || st.Requester != "agent:fixer" || st.Steps[0].Decision.Effect != remediation.EffectCosign {
		t.Errorf("requester reads: %d %+v", code, st)
	}
	if code, _ := get(oncallToken); code != http.StatusOK {
		t.Errorf("a human reads: %d", code)
	}
	if code, _ := get(otherToken); code != http.StatusNotFound {
		t.Errorf("another agent reads: %d, want 404", code)
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentRefused || ev.Client != "other" || ev.Operation != "status" || ev.Remediation != agentID("fixer", "fp-own") {
		t.Errorf("audit %s %+v", typ, ev)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("unauthenticated read: %d", code)
	}
	if resp, _ := e.call(t, http.MethodGet, "/v1/remediations/nope", fixerToken, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown remediation: %s", resp.Status)
	}
	if resp, body := e.call(t, http.MethodGet, "/v1/remediations/"+strings.Repeat("x", maxIDBytes+1), fixerToken, "", nil); resp.StatusCode != http.StatusBadRequest ||
		!slices.Contains(problemFields(decodeProblem(t, body)), "id") {
		t.Errorf("overlong id: %s %s", resp.Status, body)
	}

	abort := func(token, reason string) (*http.Response, []byte) {
		return e.post(t, path+"/abort", token, mustJSON(t, AbortRequest{Reason: reason}))
	}
	if resp, _ := abort(otherToken, "not mine"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another agent aborts: %s", resp.Status)
	}
	if resp, body := abort(fixerToken, " "); resp.StatusCode != http.StatusUnprocessableEntity || !slices.Contains(problemFields(decodeProblem(t, body)), "reason") {
		t.Errorf("abort without reason: %s %s", resp.Status, body)
	}
	if resp, body := e.post(t, path+"/abort", fixerToken, []byte(`{"reason":"x","by":"alice"}`)); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("abort naming who: %s %s", resp.Status, body)
	}
	if resp, body := abort(fixerToken, strings.Repeat("r", maxReasonBytes+1)); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("overlong reason: %s %s", resp.Status, body)
	}
	if n := len(e.temporal.aborts); n != 0 {
		t.Fatalf("refused aborts sent %d signals", n)
	}
	resp, body := abort(fixerToken, "wrong incident")
	var out AbortResponse
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != http.StatusAccepted || out.StatusURL != path {
		t.Fatalf("abort: %s %s", resp.Status, body)
	}
	if got := e.temporal.aborts; len(got) != 1 || got[0] != (workflows.AbortSignal{Reason: "wrong incident", By: "agent:fixer"}) {
		t.Errorf("abort signals %+v", got)
	}
	e.temporal.setState(agentID("fixer", "fp-own"), remediation.StateAborted)
	if resp, _ := abort(oncallToken, "again"); resp.StatusCode != http.StatusConflict {
		t.Errorf("abort of an ended remediation: %s", resp.Status)
	}

	e.temporal.statusErr = errors.New("deadline exceeded")
	if code, _ := get(fixerToken); code != http.StatusServiceUnavailable {
		t.Errorf("status with Temporal down: %d", code)
	}
}

func TestAgentRateLimit(t *testing.T) {
	e := newAgentEnv(t)
	// slow has a burst of 2: any two calls, then 429 on every route.
	if resp, body := e.post(t, "/v1/remediations", slowToken, mustJSON(t, agentPlan("fp-slow"))); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first call: %s %s", resp.Status, body)
	}
	if resp, _ := e.call(t, http.MethodGet, "/v1/remediations/"+agentID("slow", "fp-slow"), slowToken, "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("second call: %s", resp.Status)
	}
	for _, path := range []string{"/v1/remediations", "/v1/remediations/" + agentID("slow", "fp-slow") + "/abort"} {
		resp, body := e.post(t, path, slowToken, mustJSON(t, agentPlan("fp-slow-2")))
		p := decodeProblem(t, body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || p.RetryAfter < 3000 {
			t.Errorf("%s over the limit: %s %s", path, resp.Status, body)
		}
		if typ, ev := e.sink.last(t); typ != AuditAgentRefused || ev.Status != http.StatusTooManyRequests || ev.Client != "slow" {
			t.Errorf("audit %s %+v", typ, ev)
		}
	}
	if n := len(e.temporal.plans()); n != 1 {
		t.Errorf("%d remediations started, want 1", n)
	}
	// Another client's budget is its own.
	if resp, _ := e.post(t, "/v1/remediations", fixerToken, mustJSON(t, agentPlan("fp-fast"))); resp.StatusCode != http.StatusAccepted {
		t.Errorf("fixer limited by slow's budget: %s", resp.Status)
	}
}

func TestAgentUnauthenticatedFloodIsRecordedWithinBudget(t *testing.T) {
	e := newAgentEnv(t)
	const flood = 200
	began := time.Now()
	for i := range flood {
		resp, _ := e.post(t, "/v1/remediations", fmt.Sprintf("forged-%d", i), mustJSON(t, agentPlan("fp-flood")))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged token %d: %s", i, resp.Status)
		}
	}
	types, _ := e.sink.records(t)
	n := len(types)
	if most := budgetAllows(time.Since(began)); n < 20 || n > most {
		t.Fatalf("%d records for %d unauthenticated calls, want the budget's burst of 20 and its refills (at most %d)", n, flood, most)
	}
	if n := len(e.temporal.plans()); n != 0 {
		t.Fatalf("%d remediations started by unauthenticated calls", n)
	}
	// Once the budget refills, the next refusal says how many were left out.
	time.Sleep(250 * time.Millisecond)
	if resp, _ := e.post(t, "/v1/remediations", "forged-last", mustJSON(t, agentPlan("fp-flood"))); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("last forged token: %s", resp.Status)
	}
	typ, ev := e.sink.last(t)
	if typ != AuditAgentRefused || ev.Operation != "authenticate" || ev.Suppressed < 1 || ev.Suppressed > int64(flood-n) || (n == 20 && ev.Suppressed != flood-20) {
		t.Fatalf("the record after the flood: %s %+v, want the count left out since the last record (%d left out in all)", typ, ev, flood-n)
	}
}

func TestNewAgentAPINamesWhatIsMissing(t *testing.T) {
	_, err := NewAgentAPI(AgentAPIOptions{})
	for _, want := range []string{"Remediations", "Auth", "Limiter", "Recorder"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func FuzzDecodePlanRequest(f *testing.F) {
	f.Add(string(mustJSON(f, agentPlan("fp"))))
	f.Add(`{"requester":null}`)
	f.Add(`{"REQUESTER":{"kind":"agent","name":"x"},"incident":{"source":"a","fingerprint":"b"}}`)
	f.Add(`{"id":"x/y","steps":[{"action":"kubernetes.delete-pod","target":{"namespace":"a","kind":"Pod","name":"p"},"justification":"j"}]}`)
	f.Add(`[]`)
	agent := Principal{Name: "fixer", Kind: KindAgent, Owner: "alice@example.com"}
	f.Fuzz(func(t *testing.T, data string) {
		plan, fields := decodePlanRequest([]byte(data), agent)
		for _, fp := range fields {
			if fp.Field == "" || fp.Detail == "" {
				t.Fatalf("a problem without field or detail: %+v", fp)
			}
		}
		if len(fields) > 0 {
			return
		}
		// Accepted: valid, requested by the agent, and with no requester key.
		if plan.Requester != requesterOf(agent) {
			t.Fatalf("requester %+v", plan.Requester)
		}
		if err := plan.Validate(); err != nil {
			t.Fatalf("accepted an invalid plan: %v", err)
		}
		var probe struct {
			Requester *remediation.Requester `json:"requester"`
		}
		if err := json.Unmarshal([]byte(data), &probe); err != nil {
			t.Fatalf("accepted a body that is not an object: %v", err)
		}
		if probe.Requester != nil && *probe.Requester != (remediation.Requester{}) {
			t.Fatalf("accepted a plan that sets requester %+v", *probe.Requester)
		}
	})
}

// A plan proposed through the agent door gets an ID of its client's own: an
// agent that names its incident after a trigger and an alert's fingerprint
// does not take the ID the intake starts that alert's remediation under,
// nor another client's; its own proposals for one incident still join.
func TestAgentPlanIDsAreTheClients(t *testing.T) {
	e := newAgentEnv(t)
	squat := agentPlan("4f1c2a")
	squat["incident"] = map[string]any{"source": "replicas-mismatch", "fingerprint": "4f1c2a"}
	intakeID := remediation.Plan{Incident: remediation.Incident{Source: "replicas-mismatch", Fingerprint: "4f1c2a"}}.WorkflowID()
	propose := func(token string, plan map[string]any) (int, ProposeResponse, Problem) {
		t.Helper()
		resp, body := e.post(t, "/v1/remediations", token, mustJSON(t, plan))
		var out ProposeResponse
		var p Problem
		if resp.StatusCode == http.StatusAccepted {
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
		} else {
			p = decodeProblem(t, body)
		}
		return resp.StatusCode, out, p
	}
	code, first, _ := propose(fixerToken, squat)
	if code != http.StatusAccepted || first.ID == intakeID || !strings.HasPrefix(first.ID, "agent:fixer:replicas-mismatch-4f1c2a-") || first.Joined {
		t.Fatalf("propose: %d %+v; the intake's ID is %s", code, first, intakeID)
	}
	if code, again, _ := propose(fixerToken, squat); code != http.StatusAccepted || again.ID != first.ID || !again.Joined {
		t.Errorf("the same client's second proposal: %d %+v, want it to join %s", code, again, first.ID)
	}
	if code, other, _ := propose(otherToken, squat); code != http.StatusAccepted || other.ID == first.ID || other.ID == intakeID || other.Joined {
		t.Errorf("another client's proposal: %d %+v, want its own remediation", code, other)
	}
	if plans := e.temporal.plans(); len(plans) != 2 || plans[0].ID != first.ID || plans[0].WorkflowID() != first.ID {
		t.Errorf("started %d plans: %+v", len(plans), plans)
	}

	// An explicit id in a derived space is refused; any other is kept.
	for _, id := range []string{intakeID, "agent:other:x", "human:oncall:x"} {
		withID := agentPlan("fp-explicit")
		withID["id"] = id
		code, _, p := propose(fixerToken, withID)
		if code != http.StatusUnprocessableEntity || !slices.Equal(problemFields(p), []string{"id"}) || !strings.Contains(p.Errors[0].Detail, "leave id out") {
			t.Errorf("id %q: %d %+v", id, code, p)
		}
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentRefused || !slices.Equal(ev.Fields, []string{"id"}) {
		t.Errorf("audit %s %+v", typ, ev)
	}
	withID := agentPlan("fp-explicit")
	withID["id"] = "fixer-checkout-1"
	if code, out, p := propose(fixerToken, withID); code != http.StatusAccepted || out.ID != "fixer-checkout-1" {
		t.Errorf("an explicit id: %d %+v %+v", code, out, p)
	}
	if n := len(e.temporal.plans()); n != 3 {
		t.Errorf("%d plans started, want 3", n)
	}
}
