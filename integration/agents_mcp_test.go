//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// agentBearer sends a bearer token with every request.
type agentBearer struct{ token string }

func (b agentBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func (d agentDoor) mcpSession(t *testing.T, ctx context.Context, token string) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "it-agent", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: d.srv.URL + gateway.PatternMCP, HTTPClient: &http.Client{Transport: agentBearer{token}}, MaxRetries: -1,
	}, nil)
	if err == nil {
		t.Cleanup(func() { _ = cs.Close() })
	}
	return cs, err
}

// mcpCall calls a tool, fails the test on a tool error, and decodes its result.
func mcpCall(t *testing.T, ctx context.Context, cs *mcp.ClientSession, name string, args, out any) {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: %+v", name, res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s result %s: %v", name, b, err)
	}
}

func TestAgentMCPProposesAndReadsStatus(t *testing.T) {
	d := startAgentDoor(t)
	d.api.MountMCP(d.gw)
	ns := namespace(t)
	deployment(t, ns, "mcp", 2, "registry.example/mcp:v1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := d.mcpSession(t, ctx, d.token+"x"); err == nil {
		t.Error("an MCP client with a wrong token connected")
	}
	cs, err := d.mcpSession(t, ctx, d.token)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{gateway.ToolGetRemediation, gateway.ToolListActions, gateway.ToolProposeRemediation}; !slices.Equal(names, want) {
		t.Fatalf("tools %v", names)
	}
	var actions gateway.ListActionsOutput
	mcpCall(t, ctx, cs, gateway.ToolListActions, map[string]any{}, &actions)
	if i := slices.IndexFunc(actions.Actions, func(a gateway.ActionInfo) bool { return a.Name == string(remediation.ActionDeletePod) }); i < 0 || actions.Actions[i].Reversible {
		t.Errorf("list_actions: %+v", actions.Actions)
	}

	// The plan as an LLM would write it: no requester.
	p := agentDoorPlan(ns, "mcp", 3)
	var args map[string]any
	b, _ := json.Marshal(p)
	if err := json.Unmarshal(b, &args); err != nil {
		t.Fatal(err)
	}
	delete(args, "requester")
	var proposed gateway.ProposeOutput
	mcpCall(t, ctx, cs, gateway.ToolProposeRemediation, args, &proposed)
	if proposed.ID != p.ID || proposed.Joined || proposed.Status == nil || len(proposed.Status.Steps) != 1 {
		t.Fatalf("propose_remediation answered %+v", proposed)
	}
	if d := proposed.Status.Steps[0].Decision; d == nil || d.Effect != remediation.EffectAllow {
		t.Errorf("first decision %+v, want allow", d)
	}
	var st workflows.Status
	waitFor(t, "the remediation completed", func() (bool, error) {
		mcpCall(t, ctx, cs, gateway.ToolGetRemediation, gateway.GetRemediationInput{ID: proposed.ID}, &st)
		return st.State != remediation.StateRunning, nil
	})
	wantState(t, st, remediation.StateCompleted)
	if st.Requester != "agent:"+d.name || st.Steps[0].Decision.Effect != remediation.EffectAllow {
		t.Errorf("status %+v", st)
	}
	if got := *getDeployment(t, ns, "mcp").Spec.Replicas; got != 3 {
		t.Errorf("replicas %d, want 3", got)
	}
}
