//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// agentDoorPolicy lets an agent scale, sends a set-image to one co-signer,
// and denies anything else, such as a scale that a non-agent requested.
const agentDoorPolicy = `package reins.policy

decision := {"effect": "allow", "risk": "low", "reasons": [sprintf("agent %s may scale", [input.requester.name])]} if {
	input.step.action == "kubernetes.scale"
	input.requester.kind == "agent"
} else := {"effect": "cosign", "risk": "high", "approvers": 1, "group": "oncall-sre", "reasons": ["a new image needs a co-signer"]} if {
	input.step.action == "kubernetes.set-image"
} else := {"effect": "deny", "risk": "high", "reasons": ["the agent door test bundle allows nothing else"]}
`

// agentDoor is a worker (agentDoorPolicy) and a gateway serving the agent
// API (and, with mountMCP, the MCP server) to two agents: name, whose token
// is token, and limited, allowed one call an hour.
type agentDoor struct {
	w       worker
	srv     *httptest.Server
	gw      *gateway.Server
	api     *gateway.AgentAPI
	name    string
	token   string
	limited string // the limited agent's token
	// human is a human client, humanToken its token.
	human, humanToken string
	auditPath         string
}

func startAgentDoor(t *testing.T) agentDoor {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(agentDoorPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, dir)
	d := agentDoor{w: w, name: unique("it-agent"), limited: unique("limited"), human: unique("it-human") + "@example.com", humanToken: unique("human-token")}
	tok, sum, err := gateway.NewClientToken()
	if err != nil {
		t.Fatal(err)
	}
	d.token = tok
	clients := workers.ClientsConfig{
		{Name: d.name, Kind: "agent", Owner: "alice@example.com", TokenSHA256: sum, Rate: "unlimited"},
		{Name: d.name + "-slow", Kind: "agent", TokenSHA256: gateway.HashToken(d.limited), Rate: "1/h", Burst: 1},
		{Name: d.human, Kind: "human", Groups: []string{"oncall-sre"}, TokenSHA256: gateway.HashToken(d.humanToken), Rate: "unlimited"},
	}
	auth, err := clients.Authenticator()
	if err != nil {
		t.Fatal(err)
	}
	d.auditPath = filepath.Join(t.TempDir(), "gateway-audit.jsonl")
	sink, err := audit.OpenFile(d.auditPath, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	rec, err := gateway.NewRecorder([]gateway.AuditSink{sink}, stack.temporal.Namespace, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	d.api, err = gateway.NewAgentAPI(gateway.AgentAPIOptions{
		Remediations: gateway.TemporalAgentRemediations{Client: stack.client, TaskQueue: w.cfg.TaskQueue},
		Auth:         auth, Limiter: auth, Recorder: rec,
		TemporalUI: "http://localhost:8233", Namespace: stack.temporal.Namespace,
		DecisionWait: 30 * time.Second, Logger: stack.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.gw = newTestGateway(t)
	d.api.Mount(d.gw)
	d.srv = httptest.NewServer(d.gw)
	t.Cleanup(d.srv.Close)
	return d
}

// call sends body (JSON) with the bearer token ("" for none).
func (d agentDoor) call(t *testing.T, method, path, token string, body any) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data, resp.Header
}

// auditTypes counts the gateway's audit records by type.
func (d agentDoor) auditTypes(t *testing.T) map[string]int {
	t.Helper()
	recs, err := audit.ReadFile(d.auditPath, gateway.RecorderSubject)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, raw := range recs {
		rec, err := remediation.ParseAuditRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		out[rec.Type]++
	}
	return out
}

// agentDoorPlan scales ns/name to n in production (allowed for agents by
// agentDoorPolicy), without requester.
func agentDoorPlan(ns, name string, n int32) remediation.Plan {
	p := plan("production", step(remediation.ActionScale, remediation.KindDeployment, ns, name, replicas(n)))
	p.Requester = remediation.Requester{}
	return p
}

// wantNeverStarted fails unless Temporal has no workflow id: Describe (strongly
// consistent) and a visibility count.
func wantNeverStarted(t *testing.T, id string) {
	t.Helper()
	_, err := stack.client.DescribeWorkflow(context.Background(), id, "")
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		t.Errorf("remediation %s exists (describe: %v)", id, err)
	}
	if n := visibilityCount(t, fmt.Sprintf("WorkflowId = %q", id)); n != 0 {
		t.Errorf("visibility counts %d workflows %s", n, id)
	}
}

func visibilityCount(t *testing.T, query string) int64 {
	t.Helper()
	resp, err := stack.client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: stack.temporal.Namespace, Query: query})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCount()
}

func TestAgentAPIRefusesAndStartsAsTheAgent(t *testing.T) {
	d := startAgentDoor(t)
	ns := namespace(t)
	deployment(t, ns, "api", 2, "registry.example/api:v1")

	// Unauthenticated, a wrong token, a plan setting its requester: refused,
	// nothing started.
	refusedNoToken, refusedWrong, refusedRequester := agentDoorPlan(ns, "api", 3), agentDoorPlan(ns, "api", 3), agentDoorPlan(ns, "api", 3)
	refusedRequester.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	if code, body, h := d.call(t, http.MethodPost, "/v1/remediations", "", refusedNoToken); code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, body, _ := d.call(t, http.MethodPost, "/v1/remediations", d.token+"x", refusedWrong); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d %s", code, body)
	}
	code, body, _ := d.call(t, http.MethodPost, "/v1/remediations", d.token, refusedRequester)
	var prob gateway.Problem
	if err := json.Unmarshal(body, &prob); err != nil || code != http.StatusUnprocessableEntity || len(prob.Errors) != 1 || prob.Errors[0].Field != "requester" {
		t.Errorf("requester set: %d %s", code, body)
	}

	// A good plan starts, with the agent as requester.
	good := agentDoorPlan(ns, "api", 3)
	code, body, h := d.call(t, http.MethodPost, "/v1/remediations", d.token, good)
	var started gateway.ProposeResponse
	if err := json.Unmarshal(body, &started); err != nil || code != http.StatusAccepted || started.ID != good.ID || h.Get("Location") != started.StatusURL || started.Joined {
		t.Fatalf("good plan: %d %s", code, body)
	}
	requester := "agent:" + d.name
	var st workflows.Status
	waitFor(t, "the remediation completed", func() (bool, error) {
		code, body, _ := d.call(t, http.MethodGet, started.StatusURL, d.token, nil)
		if code != http.StatusOK {
			return false, fmt.Errorf("status %d %s", code, body)
		}
		err := json.Unmarshal(body, &st)
		return err == nil && st.State != remediation.StateRunning, err
	})
	wantState(t, st, remediation.StateCompleted)
	if st.Requester != requester {
		t.Errorf("requester %q, want %q", st.Requester, requester)
	}
	if got := *getDeployment(t, ns, "api").Spec.Replicas; got != 3 {
		t.Errorf("replicas %d, want 3", got)
	}
	waitFor(t, "ReinsRequester in visibility", func() (bool, error) {
		return visibilityCount(t, fmt.Sprintf("WorkflowId = %q AND ReinsRequester = %q", good.ID, requester)) == 1, nil
	})
	for _, p := range []remediation.Plan{refusedNoToken, refusedWrong, refusedRequester} {
		wantNeverStarted(t, p.ID)
	}

	// Another client may not read it; aborting an ended one conflicts.
	if code, _, _ := d.call(t, http.MethodGet, started.StatusURL, d.limited, nil); code != http.StatusNotFound {
		t.Errorf("another agent reads: %d", code)
	}
	if code, body, _ := d.call(t, http.MethodPost, started.StatusURL+"/abort", d.token, gateway.AbortRequest{Reason: "late"}); code != http.StatusConflict {
		t.Errorf("abort after the end: %d %s", code, body)
	}

	// The limited agent: one call, then 429 with Retry-After, nothing started.
	limited := agentDoorPlan(ns, "api", 4)
	code, body, h = d.call(t, http.MethodPost, "/v1/remediations", d.limited, limited)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("over the rate limit: %d %s", code, body)
	}
	wantNeverStarted(t, limited.ID)

	got := d.auditTypes(t)
	if got[gateway.AuditAgentStarted] != 1 || got[gateway.AuditAgentRefused] != 6 {
		t.Errorf("gateway audit records %v, want 1 started and 6 refused", got)
	}
}

func TestAgentAPIAbortsItsRemediation(t *testing.T) {
	d := startAgentDoor(t)
	ns := namespace(t)
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	// A production set-image waits for a co-signer: abort it meanwhile.
	p := plan("production", step(remediation.ActionSetImage, remediation.KindDeployment, ns, "checkout",
		remediation.Params{Container: "app", Image: "registry.example/checkout:v2"}))
	p.Requester = remediation.Requester{}
	code, body, _ := d.call(t, http.MethodPost, "/v1/remediations", d.token, p)
	var started gateway.ProposeResponse
	if err := json.Unmarshal(body, &started); err != nil || code != http.StatusAccepted {
		t.Fatalf("propose: %d %s", code, body)
	}
	var st workflows.Status
	waitFor(t, "awaiting approval", func() (bool, error) {
		_, body, _ := d.call(t, http.MethodGet, started.StatusURL, d.token, nil)
		err := json.Unmarshal(body, &st)
		return err == nil && len(st.Steps) == 1 && st.Steps[0].State == remediation.StepAwaitingApproval, err
	})
	if code, body, _ := d.call(t, http.MethodPost, started.StatusURL+"/abort", d.token, gateway.AbortRequest{Reason: "the incident resolved itself"}); code != http.StatusAccepted {
		t.Fatalf("abort: %d %s", code, body)
	}
	waitFor(t, "aborted", func() (bool, error) {
		_, body, _ := d.call(t, http.MethodGet, started.StatusURL, d.token, nil)
		err := json.Unmarshal(body, &st)
		return err == nil && st.State != remediation.StateRunning, err
	})
	wantState(t, st, remediation.StateAborted)
	if !strings.Contains(st.Reason, "the incident resolved itself") {
		t.Errorf("reason %q", st.Reason)
	}
	if img := getDeployment(t, ns, "checkout").Spec.Template.Spec.Containers[0].Image; img != "registry.example/checkout:v1" {
		t.Errorf("image %s after an abort before the step", img)
	}
}

// `reins start` with client.url set goes through the gateway: the plan's
// requester is the human the client token authenticates, not a name the
// CLI claims; a plan that names its own requester starts nothing.
func TestCLIStartThroughGateway(t *testing.T) {
	d := startAgentDoor(t)
	bin := buildReins(t)
	ns := namespace(t)
	deployment(t, ns, "web", 1, "registry.example/web:v1")
	p := plan("production", step(remediation.ActionSetImage, remediation.KindDeployment, ns, "web", remediation.Params{Container: "app", Image: "registry.example/web:v2"}))
	p.Requester = remediation.Requester{}
	dir := t.TempDir()
	write := func(name string, plan remediation.Plan) string {
		path := filepath.Join(dir, name)
		data, err := json.Marshal(plan)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	start := func(path string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, "start", "-f", path)
		cmd.Env = append(os.Environ(), "REINS_CONFIG=", "REINS_IDENTITY=someone-else", "REINS_GATEWAY_URL="+d.srv.URL, "REINS_CLIENT_TOKEN="+d.humanToken)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run reins start: %v", err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}

	claimed := p
	claimed.Incident.Fingerprint = unique("fp")
	claimed.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "someone-else"}
	if out, errOut, code := start(write("claimed.json", claimed)); code != 1 || !strings.Contains(errOut, "plan field requester") {
		t.Fatalf("a plan naming its requester: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := workflows.GetStatus(context.Background(), stack.client, claimed.WorkflowID()); err == nil {
		t.Fatal("a plan naming its requester started a remediation")
	}

	out, errOut, code := start(write("plan.json", p))
	id := strings.TrimSpace(out)
	if code != 0 || id != p.WorkflowID() {
		t.Fatalf("reins start: exit %d, printed %q, want %s\n%s", code, out, p.WorkflowID(), errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := stack.client.GetWorkflow(ctx, id, "")
	var st workflows.Status
	waitFor(t, "step 0 awaiting approval", func() (bool, error) {
		var err error
		st, err = workflows.GetStatus(ctx, stack.client, id)
		return err == nil && st.Steps[0].State == remediation.StepAwaitingApproval, err
	})
	if want := (remediation.Requester{Kind: remediation.RequesterHuman, Name: d.human}); st.RequestedBy != want {
		t.Fatalf("requested by %+v, want the token's human %+v", st.RequestedBy, want)
	}
	if n := d.auditTypes(t)[gateway.AuditAgentStarted]; n != 1 {
		t.Errorf("%d %s records, want 1", n, gateway.AuditAgentStarted)
	}
	if err := workflows.Abort(ctx, stack.client, id, workflows.AbortSignal{Reason: "test over", By: "integration"}); err != nil {
		t.Fatal(err)
	}
	if st, err := workflows.Result(ctx, run); err != nil || st.State != remediation.StateAborted {
		t.Fatalf("after the abort: %s %v", st.State, err)
	}
}
