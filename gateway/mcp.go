package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// The MCP server's tools.
const (
	ToolProposeRemediation = "propose_remediation"
	ToolGetRemediation     = "get_remediation"
	ToolListActions        = "list_actions"
)

// maxMCPBodyBytes bounds one MCP HTTP request: a plan and its JSON-RPC envelope.
const maxMCPBodyBytes = 2 * remediation.MaxPlanBytes

// decisionPoll is how often propose_remediation looks for the first decision.
const decisionPoll = 200 * time.Millisecond

const mcpInstructions = `reins runs remediations of production Kubernetes incidents as durable workflows.
You act on production only through reins: call list_actions to learn what you may propose,
then propose_remediation with a plan (incident, environment, explanation, steps with their
justification). Every step is checked against policy; some need a human's co-signature and
others are denied; a failed or denied remediation undoes its steps. You are the plan's requester:
reins sets it from your identity. Follow a remediation with get_remediation.`

// MountMCP registers the MCP server at PatternMCP on m, behind
// authentication. It serves MCP's streamable HTTP transport statelessly:
// every HTTP request is authenticated and served on its own, so a tool
// always acts as the client that sent that very request, and no session can
// be taken over. Its tools are propose_remediation, get_remediation and
// list_actions; they apply the HTTP API's rules (validation, requester,
// ownership, rate limit, audit) and return decisions and status, never
// credentials.
func (a *AgentAPI) MountMCP(m RouteMux) {
	srv := a.newMCPServer()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless:           true,
		JSONResponse:        true,
		Logger:              a.log,
		MaxRequestBodyBytes: maxMCPBodyBytes,
	})
	m.Handle(PatternMCP, RequirePrincipal(a.recordingAuth(doorMCP), h))
}

// ProposedPlan is propose_remediation's input: a remediation.Plan without
// requester, which reins sets from the caller's identity. Its fields mirror
// remediation.Plan's; the tool decodes its arguments exactly as POST
// /v1/remediations decodes a body.
type ProposedPlan struct {
	ID          string               `json:"id,omitempty" jsonschema:"the remediation ID; leave it out to derive it from the incident, so that duplicates of one incident join one remediation"`
	Incident    remediation.Incident `json:"incident" jsonschema:"what the remediation answers: source (e.g. alertmanager), fingerprint (the incident's identity) and an optional url"`
	Environment string               `json:"environment" jsonschema:"where the targets run, e.g. production or staging"`
	Explanation string               `json:"explanation" jsonschema:"why this plan fixes the incident, in a sentence or more; approvers read it"`
	DryRun      bool                 `json:"dry_run,omitempty" jsonschema:"check every step with server-side dry run and change nothing"`
	Steps       []remediation.Step   `json:"steps" jsonschema:"the changes in order (at most 50): action, target {namespace, kind, name}, params and a justification; list_actions gives each action's kinds and params"`
}

// ProposeOutput is propose_remediation's result.
type ProposeOutput struct {
	ID     string `json:"id" jsonschema:"the remediation ID; give it to get_remediation"`
	RunID  string `json:"run_id"`
	Joined bool   `json:"joined" jsonschema:"true when a remediation of the same incident was already running and the plan joined it"`
	UIURL  string `json:"ui_url,omitempty"`
	// Status is the remediation's status once its first step was decided
	// (or when the wait ended); absent when it could not be read or when
	// the plan joined another client's remediation.
	Status *workflows.Status `json:"status,omitempty" jsonschema:"the status after the first policy decision (or a short wait): state, and per step its decision (effect, risk, reasons) and state"`
}

// GetRemediationInput is get_remediation's input.
type GetRemediationInput struct {
	ID string `json:"id" jsonschema:"the remediation ID that propose_remediation returned"`
}

// ListActionsInput is list_actions' input: nothing.
type ListActionsInput struct{}

// ActionInfo describes one action a plan's step may take.
type ActionInfo struct {
	Name string `json:"name"`
	// Kinds are the object kinds the action targets.
	Kinds []string `json:"kinds"`
	// Params are the params it requires (no others are accepted).
	Params     []string `json:"params"`
	Reversible bool     `json:"reversible" jsonschema:"false when nothing can undo the action: a failed remediation cannot roll it back"`
	Summary    string   `json:"summary"`
}

// ListActionsOutput is list_actions' result.
type ListActionsOutput struct {
	Actions []ActionInfo `json:"actions"`
}

func (a *AgentAPI) newMCPServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "reins", Title: "reins remediations", Version: a.opts.Version},
		&mcp.ServerOptions{Instructions: mcpInstructions, Logger: a.log})
	s.AddReceivingMiddleware(a.auditToolRefusals)
	no := false
	mcp.AddTool(s, &mcp.Tool{
		Name:  ToolProposeRemediation,
		Title: "Propose a remediation",
		Description: "Propose a remediation plan for an incident. reins validates it (every bad field is named), " +
			"sets you as its requester, starts it, and answers with its ID and its status after the first step's policy decision " +
			"(allow, cosign: waiting for humans, or deny). A plan for an incident that already has a running remediation joins it. " +
			"Do not set a requester: reins sets it from your identity.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &no, OpenWorldHint: &no},
	}, a.toolPropose)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolGetRemediation,
		Title:       "Get a remediation's status",
		Description: "The status of a remediation you proposed: its state and, per step, the policy decision, approvals, action and verification.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no},
	}, a.toolGet)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolListActions,
		Title:       "List the actions",
		Description: "The actions a plan's step may take: for each, the object kinds it targets, the params it requires, and whether it can be undone.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, toolListActions)
	return s
}

// toolProblem is a refusal as a tool error.
type toolProblem struct{ p *Problem }

func (e toolProblem) Error() string {
	var b strings.Builder
	b.WriteString(e.p.Title)
	if e.p.Detail != "" {
		b.WriteString(": " + e.p.Detail)
	}
	for _, f := range e.p.Errors {
		fmt.Fprintf(&b, "\n%s: %s", f.Field, f.Detail)
	}
	return b.String()
}

// principal is the caller of a tool; RequirePrincipal put it in the
// request's context, which the stateless transport hands to the tool.
func principal(ctx context.Context) (Principal, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return p, toolProblem{&Problem{Title: "Unauthenticated", Detail: "no authenticated client"}}
	}
	return p, nil
}

func (a *AgentAPI) toolPropose(ctx context.Context, req *mcp.CallToolRequest, _ ProposedPlan) (*mcp.CallToolResult, ProposeOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, ProposeOutput{}, err
	}
	if prob := a.admit(p); prob != nil {
		return nil, ProposeOutput{}, toolProblem{prob}
	}
	// MCP is the agents' door; a human starts remediations with `reins start`.
	if p.Kind != KindAgent {
		return nil, ProposeOutput{}, toolProblem{&Problem{Status: http.StatusForbidden, Title: "Forbidden",
			Detail: "only agents propose plans over MCP; humans start remediations with `reins start`"}}
	}
	st, plan, prob := a.propose(ctx, p, req.Params.Arguments)
	if prob != nil {
		return nil, ProposeOutput{}, toolProblem{prob}
	}
	a.record(ctx, AuditAgentStarted, agentAudit{Door: doorMCP, Operation: ToolProposeRemediation, Client: p.Name, Kind: p.Kind,
		Remediation: st.ID, RunID: st.RunID, Joined: st.Joined, PlanDigest: plan.Digest()})
	out := ProposeOutput{ID: st.ID, RunID: st.RunID, Joined: st.Joined, UIURL: a.uiURL(st.ID)}
	if status, ok := a.awaitDecision(ctx, p, st.ID); ok {
		out.Status = &status
	}
	return nil, out, nil
}

// awaitDecision polls the status of remediation id until its first step is
// decided or it ended, for at most DecisionWait; ok is false when no status
// could be read, or when p may not see it (a plan that joined another
// client's remediation).
func (a *AgentAPI) awaitDecision(ctx context.Context, p Principal, id string) (workflows.Status, bool) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.DecisionWait)
	defer cancel()
	tick := time.NewTicker(decisionPoll)
	defer tick.Stop()
	var last workflows.Status
	have := false
	for {
		// Errors are expected until the first workflow task ran: keep polling.
		if st, err := a.opts.Remediations.Status(ctx, id); err == nil {
			if !agentMay(p, st) {
				return workflows.Status{}, false
			}
			last, have = st, true
			if st.State != remediation.StateRunning || (len(st.Steps) > 0 && st.Steps[0].Decision != nil) {
				return st, true
			}
		}
		select {
		case <-ctx.Done():
			return last, have
		case <-tick.C:
		}
	}
}

func (a *AgentAPI) toolGet(ctx context.Context, _ *mcp.CallToolRequest, in GetRemediationInput) (*mcp.CallToolResult, workflows.Status, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, workflows.Status{}, err
	}
	if prob := a.admit(p); prob != nil {
		return nil, workflows.Status{}, toolProblem{prob}
	}
	st, prob := a.owned(ctx, p, in.ID)
	if prob != nil {
		return nil, workflows.Status{}, toolProblem{prob}
	}
	return nil, st, nil
}

func toolListActions(context.Context, *mcp.CallToolRequest, ListActionsInput) (*mcp.CallToolResult, ListActionsOutput, error) {
	var out ListActionsOutput
	for _, s := range remediation.Actions() {
		out.Actions = append(out.Actions, ActionInfo{
			Name: string(s.Action), Kinds: s.Kinds, Params: append([]string{}, s.Params...),
			Reversible: !s.Irreversible, Summary: s.Summary,
		})
	}
	return nil, out, nil
}

// auditToolRefusals records every tool call that failed, whether the tool
// refused it or the SDK did (arguments that do not match the tool's
// schema, an unknown tool).
func (a *AgentAPI) auditToolRefusals(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		call, ok := req.(*mcp.CallToolRequest)
		if !ok || call.Params == nil {
			return res, err
		}
		failure := err
		if r, ok := res.(*mcp.CallToolResult); ok && err == nil && r.IsError {
			failure = r.GetError()
			if failure == nil {
				failure = errors.New("tool error")
			}
		}
		if failure == nil {
			return res, err
		}
		p, _ := PrincipalFrom(ctx)
		ev := agentAudit{Door: doorMCP, Operation: clipText(call.Params.Name, 100), Client: p.Name, Kind: p.Kind, Reason: clipText(failure.Error(), 2000)}
		var tp toolProblem
		if errors.As(failure, &tp) {
			ev.Status, ev.Reason = tp.p.Status, tp.p.Detail
			for _, f := range tp.p.Errors {
				ev.Fields = append(ev.Fields, f.Field)
			}
		}
		a.record(ctx, AuditAgentRefused, ev)
		return res, err
	}
}

// clipText cuts s to at most n runes, for audit records.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
