package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// mcpBearer adds a bearer token to every request.
type mcpBearer struct {
	token string
	base  http.RoundTripper
}

func (b mcpBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func newMCPEnv(t *testing.T) *agentEnv {
	t.Helper()
	e := newAgentEnv(t)
	e.api.MountMCP(e.mux)
	return e
}

// connect opens an MCP session as the client with token.
func (e *agentEnv) connect(t *testing.T, token string) (*mcp.ClientSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   e.srv.URL + "/mcp",
		HTTPClient: &http.Client{Transport: mcpBearer{token: token, base: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
	if err == nil {
		t.Cleanup(func() { _ = cs.Close() })
	}
	return cs, err
}

// callTool calls a tool and decodes its structured result into out.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !res.IsError && out != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s result %s: %v", name, b, err)
		}
	}
	return res
}

func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestMCPTools(t *testing.T) {
	e := newMCPEnv(t)
	cs, err := e.connect(t, fixerToken)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.Name == ToolProposeRemediation && strings.Contains(mustJSONString(t, tool.InputSchema), `"requester"`) {
			t.Errorf("propose_remediation's schema offers requester: %s", mustJSONString(t, tool.InputSchema))
		}
	}
	slices.Sort(names)
	if want := []string{ToolGetRemediation, ToolListActions, ToolProposeRemediation}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}

	var actions ListActionsOutput
	callTool(t, cs, ToolListActions, map[string]any{}, &actions)
	if len(actions.Actions) != len(remediation.Actions()) {
		t.Fatalf("list_actions: %+v", actions)
	}
	for _, a := range actions.Actions {
		spec, ok := remediation.Action(a.Name).Spec()
		if !ok || a.Reversible == spec.Irreversible || !slices.Equal(a.Kinds, spec.Kinds) || a.Summary == "" {
			t.Errorf("action %+v does not match its spec %+v", a, spec)
		}
		if a.Name == string(remediation.ActionScale) && !slices.Equal(a.Params, []string{"replicas"}) {
			t.Errorf("scale params %v", a.Params)
		}
	}

	var proposed ProposeOutput
	res := callTool(t, cs, ToolProposeRemediation, agentPlan("fp-mcp"), &proposed)
	if res.IsError {
		t.Fatalf("propose: %s", toolText(res))
	}
	if proposed.ID != agentID("fixer", "fp-mcp") || proposed.Joined || proposed.Status == nil ||
		proposed.Status.Steps[0].Decision == nil || proposed.Status.Steps[0].Decision.Effect != remediation.EffectCosign {
		t.Fatalf("propose answered %+v", proposed)
	}
	if plans := e.temporal.plans(); len(plans) != 1 || plans[0].Requester != (remediation.Requester{Kind: "agent", Name: "fixer", Owner: "alice@example.com"}) {
		t.Fatalf("started %+v", plans)
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentStarted || ev.Door != "mcp" || ev.Client != "fixer" || ev.Remediation != proposed.ID {
		t.Errorf("audit %s %+v", typ, ev)
	}

	var st workflows.Status
	if res := callTool(t, cs, ToolGetRemediation, GetRemediationInput{ID: proposed.ID}, &st); res.IsError || st.ID != proposed.ID || st.Requester != "agent:fixer" {
		t.Errorf("get_remediation: %s %+v", toolText(res), st)
	}
	for _, text := range []string{toolText(res), mustJSONString(t, st)} {
		if strings.Contains(strings.ToLower(text), "token") {
			t.Errorf("a tool answer mentions a token: %s", text)
		}
	}
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	return string(mustJSON(t, v))
}

func TestMCPRefusals(t *testing.T) {
	e := newMCPEnv(t)
	if _, err := e.connect(t, "wrong-token"); err == nil {
		t.Error("connected with a wrong token")
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentRefused || ev.Door != "mcp" || ev.Operation != "authenticate" {
		t.Errorf("audit %s %+v", typ, ev)
	}
	if resp, body := e.post(t, "/mcp", "", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated MCP call: %s %s", resp.Status, body)
	}

	fixer, err := e.connect(t, fixerToken)
	if err != nil {
		t.Fatal(err)
	}
	withRequester := agentPlan("fp-mcp-r")
	withRequester["requester"] = map[string]any{"kind": "human", "name": "alice"}
	res := callTool(t, fixer, ToolProposeRemediation, withRequester, nil)
	if !res.IsError || !strings.Contains(toolText(res), "requester") {
		t.Errorf("a plan with requester: %v %s", res.IsError, toolText(res))
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentRefused || ev.Operation != ToolProposeRemediation || ev.Client != "fixer" {
		t.Errorf("audit %s %+v", typ, ev)
	}
	invalid := agentPlan("fp-mcp-i")
	invalid["environment"] = "Prod!"
	res = callTool(t, fixer, ToolProposeRemediation, invalid, nil)
	if !res.IsError || !strings.Contains(toolText(res), "environment: must be lower-case") {
		t.Errorf("an invalid plan: %v %s", res.IsError, toolText(res))
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentRefused || !slices.Equal(ev.Fields, []string{"environment"}) || ev.Status != http.StatusUnprocessableEntity {
		t.Errorf("audit %s %+v", typ, ev)
	}
	if n := len(e.temporal.plans()); n != 0 {
		t.Fatalf("refused plans started %d remediations", n)
	}

	// The requester's remediation is not another agent's to read.
	if res := callTool(t, fixer, ToolProposeRemediation, agentPlan("fp-mcp-own"), nil); res.IsError {
		t.Fatal(toolText(res))
	}
	other, err := e.connect(t, otherToken)
	if err != nil {
		t.Fatal(err)
	}
	if res := callTool(t, other, ToolGetRemediation, GetRemediationInput{ID: agentID("fixer", "fp-mcp-own")}, nil); !res.IsError || !strings.Contains(toolText(res), "Not found") {
		t.Errorf("another agent reads: %v %s", res.IsError, toolText(res))
	}
	// Proposing the same incident starts the other agent's own remediation:
	// it never joins, nor learns the ID of, another client's.
	var own ProposeOutput
	if res := callTool(t, other, ToolProposeRemediation, agentPlan("fp-mcp-own"), &own); res.IsError || own.Joined || own.ID != agentID("other", "fp-mcp-own") {
		t.Errorf("another agent proposes the same incident: %s %+v", toolText(res), own)
	}
	// A human may not propose.
	human, err := e.connect(t, oncallToken)
	if err != nil {
		t.Fatal(err)
	}
	if res := callTool(t, human, ToolProposeRemediation, agentPlan("fp-mcp-h"), nil); !res.IsError || !strings.Contains(toolText(res), "only agents") {
		t.Errorf("a human proposes: %s", toolText(res))
	}

	// Rate limit: slow has a burst of 2 tool calls.
	slow, err := e.connect(t, slowToken)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if res := callTool(t, slow, ToolGetRemediation, GetRemediationInput{ID: "nope"}, nil); strings.Contains(toolText(res), "rate limit") {
			t.Fatalf("call %d limited", i+1)
		}
	}
	if res := callTool(t, slow, ToolGetRemediation, GetRemediationInput{ID: "nope"}, nil); !res.IsError || !strings.Contains(toolText(res), "rate limit") {
		t.Errorf("third call: %s", toolText(res))
	}
	if typ, ev := e.sink.last(t); typ != AuditAgentRefused || ev.Status != http.StatusTooManyRequests {
		t.Errorf("audit %s %+v", typ, ev)
	}
}

// ProposedPlan must offer exactly the plan's fields but requester.
func TestProposedPlanMirrorsPlan(t *testing.T) {
	names := func(typ reflect.Type) []string {
		var out []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			out = append(out, f.Tag.Get("json")+" "+f.Type.String())
		}
		return out
	}
	plan := slices.DeleteFunc(names(reflect.TypeFor[remediation.Plan]()), func(s string) bool { return strings.HasPrefix(s, "requester,") })
	if got := names(reflect.TypeFor[ProposedPlan]()); !slices.Equal(got, plan) {
		t.Errorf("ProposedPlan fields %v, Plan's without requester %v", got, plan)
	}
}
