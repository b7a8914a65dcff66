package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// The agent door's routes (http.ServeMux patterns), which AgentAPI.Mount and
// AgentAPI.MountMCP register:
//
//	POST /v1/remediations            a plan (JSON) → 202 AgentStarted, Location: its status
//	GET  /v1/remediations/{id}       → 200 workflows.Status
//	POST /v1/remediations/{id}/abort {"reason": "..."} → 202
//	     /mcp                        the MCP server (streamable HTTP, stateless)
//
// Every route authenticates the caller (Authenticator), then limits its rate
// (RateLimiter); errors are RFC 9457 problems naming the bad fields.
//
// Who may do what: agents and humans propose plans (humans through `reins
// start`), and the plan's requester is always the authenticated client
// ({kind: agent, name, owner} or {kind: human, name} from the client
// config): a plan that sets requester is refused. A remediation's
// status can be read, and the remediation aborted, by the agent that
// requested it and by any human client (the on-call); to any other agent it
// does not exist (404), so that agents learn nothing of each other's work.
const (
	PatternProposeRemediation = "POST /v1/remediations"
	PatternGetRemediation     = "GET /v1/remediations/{id}"
	PatternAbortRemediation   = "POST /v1/remediations/{id}/abort"
	PatternMCP                = "/mcp"
)

// RouteMux is where handlers are mounted: *Server and *http.ServeMux are.
type RouteMux interface {
	Handle(pattern string, h http.Handler)
}

// Errors an AgentRemediations implementation returns.
var (
	// ErrRemediationNotFound: no remediation has this ID (for a signal: or
	// it is no longer running).
	ErrRemediationNotFound = errors.New("remediation not found")
	// ErrRemediationEnded: the remediation is no longer running.
	ErrRemediationEnded = errors.New("remediation already ended")
)

// AgentStarted says which remediation a proposed plan started or joined.
type AgentStarted struct {
	ID    string `json:"id"`
	RunID string `json:"run_id"`
	// Joined is true when a remediation of the same incident was already
	// running: the plan joined it instead of starting another.
	Joined bool `json:"joined"`
}

// AgentRemediations is what the agent door needs of Temporal.
type AgentRemediations interface {
	// Start starts plan's remediation, or joins the running one of the same ID.
	Start(ctx context.Context, plan remediation.Plan) (AgentStarted, error)
	// Status returns the remediation's status, or ErrRemediationNotFound.
	Status(ctx context.Context, id string) (workflows.Status, error)
	// Abort asks the remediation to stop and undo its steps; it returns
	// ErrRemediationNotFound or ErrRemediationEnded when there is nothing
	// running to abort.
	Abort(ctx context.Context, id string, sig workflows.AbortSignal) error
}

// TemporalAgentRemediations drives remediations on Temporal with the workflows
// package's client helpers.
type TemporalAgentRemediations struct {
	// Client is a connected Temporal client. Required.
	Client sdkclient.Client
	// TaskQueue is where remediations are started (the workers' task_queue). Required.
	TaskQueue string
	// Options are the remediations' timeouts. Zero values: the workflow's defaults.
	Options workflows.RemediationOptions
}

var _ AgentRemediations = TemporalAgentRemediations{}

// Start starts the plan (workflows.Start: conflict policy "use existing").
func (t TemporalAgentRemediations) Start(ctx context.Context, plan remediation.Plan) (AgentStarted, error) {
	run, joined, err := workflows.Start(ctx, t.Client, t.TaskQueue, workflows.RemediationInput{Plan: plan, Options: t.Options})
	if err != nil {
		return AgentStarted{}, err
	}
	return AgentStarted{ID: run.GetID(), RunID: run.GetRunID(), Joined: joined}, nil
}

// Status queries the remediation's status.
func (t TemporalAgentRemediations) Status(ctx context.Context, id string) (workflows.Status, error) {
	st, err := workflows.GetStatus(ctx, t.Client, id)
	if temporalNotFound(err) {
		return st, fmt.Errorf("%w: %s", ErrRemediationNotFound, id)
	}
	return st, err
}

// Abort signals the remediation to abort.
func (t TemporalAgentRemediations) Abort(ctx context.Context, id string, sig workflows.AbortSignal) error {
	err := workflows.Abort(ctx, t.Client, id, sig)
	if temporalNotFound(err) {
		// Temporal answers NotFound both for an unknown ID and for a
		// workflow that completed.
		return fmt.Errorf("%w: %s", ErrRemediationEnded, id)
	}
	return err
}

func temporalNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// AgentAPIOptions configures NewAgentAPI.
type AgentAPIOptions struct {
	// Remediations starts, reads and aborts remediations
	// (TemporalAgentRemediations in production). Required.
	Remediations AgentRemediations
	// Auth authenticates every call (a *Clients). Required.
	Auth Authenticator
	// Limiter bounds each client's calls (the same *Clients). Required.
	Limiter RateLimiter
	// Recorder records every refusal and every start. Required.
	Recorder *Recorder
	// TemporalUI is the Temporal UI's base URL, e.g. http://localhost:8233,
	// and Namespace the remediations' namespace: with both set, answers
	// carry a ui_url. Default: no ui_url.
	TemporalUI string
	Namespace  string
	// CallTimeout bounds each call to Temporal. Default 10s.
	CallTimeout time.Duration
	// DecisionWait is how long the MCP tool propose_remediation waits for
	// the first step's policy decision before it answers. Default 5s.
	DecisionWait time.Duration
	// Version is what the MCP server reports as its version. Default "dev".
	Version string
	// Logger receives errors. Default slog.Default().
	Logger *slog.Logger
}

// AgentAPI is the agent door: the HTTP API and the MCP server, which share
// authentication, rate limits, validation and audit.
type AgentAPI struct {
	opts AgentAPIOptions
	log  *slog.Logger
	// unauthenticated bounds the records of failed authentications.
	unauthenticated *RefusalBudget
}

// NewAgentAPI builds the agent door; mount the HTTP API with Mount and the
// MCP server with MountMCP.
func NewAgentAPI(opts AgentAPIOptions) (*AgentAPI, error) {
	var missing []string
	if opts.Remediations == nil {
		missing = append(missing, "Remediations (a Temporal client)")
	}
	if opts.Auth == nil {
		missing = append(missing, "Auth (the clients config)")
	}
	if opts.Limiter == nil {
		missing = append(missing, "Limiter (the clients config)")
	}
	if opts.Recorder == nil {
		missing = append(missing, "Recorder (an audit sink)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("gateway agent API: missing %s", strings.Join(missing, ", "))
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.DecisionWait <= 0 {
		opts.DecisionWait = 5 * time.Second
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	a := &AgentAPI{opts: opts, log: opts.Logger, unauthenticated: NewRefusalBudget()}
	if a.log == nil {
		a.log = slog.Default()
	}
	return a, nil
}

// Mount registers the HTTP API's routes (PatternProposeRemediation,
// PatternGetRemediation, PatternAbortRemediation) on m, each behind
// authentication.
func (a *AgentAPI) Mount(m RouteMux) {
	m.Handle(PatternProposeRemediation, RequirePrincipal(a.recordingAuth(doorAPI), http.HandlerFunc(a.servePropose)))
	m.Handle(PatternGetRemediation, RequirePrincipal(a.recordingAuth(doorAPI), http.HandlerFunc(a.serveStatus)))
	m.Handle(PatternAbortRemediation, RequirePrincipal(a.recordingAuth(doorAPI), http.HandlerFunc(a.serveAbort)))
}

// Doors, as the audit records name them.
const (
	doorAPI = "api"
	doorMCP = "mcp"
)

// Bounds of the inputs besides the plan.
const (
	maxIDBytes     = 255
	maxReasonBytes = 1000
	maxAbortBytes  = 4 << 10
)

// agentAudit is the data of the AuditAgentRefused and AuditAgentStarted records.
type agentAudit struct {
	// Door is "api" or "mcp".
	Door string `json:"door"`
	// Operation: authenticate, propose, status, abort (API); the tool's name (MCP).
	Operation string `json:"operation"`
	Client    string `json:"client,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Remote    string `json:"remote,omitempty"`

	Remediation string `json:"remediation,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	Joined      bool   `json:"joined,omitempty"`
	PlanDigest  string `json:"plan_digest,omitempty"`

	// Status is the HTTP status of the refusal (the MCP door refuses with
	// the same problems as the API).
	Status int    `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Fields are the bad fields of a refused request.
	Fields []string `json:"fields,omitempty"`
	// Suppressed is how many failed authentications were not recorded
	// since the last one that was (RefusalBudget).
	Suppressed int64 `json:"suppressed,omitempty"`
}

func (a *AgentAPI) record(ctx context.Context, typ string, ev agentAudit) {
	// A failed record is logged by the Recorder; the caller's answer stands.
	_ = a.opts.Recorder.Record(context.WithoutCancel(ctx), typ, ev)
}

// recordingAuth is Auth that records failed authentications, within the
// RefusalBudget.
func (a *AgentAPI) recordingAuth(door string) Authenticator {
	return agentAuthFunc(func(r *http.Request) (Principal, error) {
		p, err := a.opts.Auth.Authenticate(r)
		if err == nil {
			return p, nil
		}
		if ok, suppressed := a.unauthenticated.Take(); ok {
			a.record(r.Context(), AuditAgentRefused, agentAudit{
				Door: door, Operation: "authenticate", Remote: r.RemoteAddr,
				Status: http.StatusUnauthorized, Reason: err.Error(), Suppressed: suppressed,
			})
		}
		return p, err
	})
}

type agentAuthFunc func(r *http.Request) (Principal, error)

func (f agentAuthFunc) Authenticate(r *http.Request) (Principal, error) { return f(r) }

// agentEvent starts the audit data of a call.
func agentEvent(r *http.Request, door, op string) agentAudit {
	p, _ := PrincipalFrom(r.Context())
	return agentAudit{Door: door, Operation: op, Client: p.Name, Kind: p.Kind, Remote: r.RemoteAddr}
}

// refuse records and writes a refusal.
func (a *AgentAPI) refuse(w http.ResponseWriter, r *http.Request, ev agentAudit, p *Problem) {
	ev.Status, ev.Reason = p.Status, p.Detail
	for _, f := range p.Errors {
		ev.Fields = append(ev.Fields, f.Field)
	}
	a.record(r.Context(), AuditAgentRefused, ev)
	p.Instance = r.URL.Path
	WriteProblem(w, *p)
}

// admit takes one call from the principal's rate budget.
func (a *AgentAPI) admit(p Principal) *Problem {
	ok, wait := a.opts.Limiter.Allow(p.Name)
	if ok {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	return &Problem{Status: http.StatusTooManyRequests, Title: "Too many requests", RetryAfter: max(secs, 1),
		Detail: fmt.Sprintf("client %s is over its rate limit; retry in %d s (clients[].rate in the gateway config)", p.Name, max(secs, 1))}
}

// requesterOf is the requester of the plans the client p proposes.
func requesterOf(p Principal) remediation.Requester {
	if p.Kind == KindHuman {
		return remediation.Requester{Kind: remediation.RequesterHuman, Name: p.Name}
	}
	return remediation.Requester{Kind: remediation.RequesterAgent, Name: p.Name, Owner: p.Owner}
}

// decodePlanRequest decodes a proposed plan strictly (remediation.DecodeBytes)
// and validates it with the agent p as its requester. A plan that sets a
// requester is refused: the requester is who authenticated (an empty
// requester, {} or null, as a Go client encoding remediation.Plan sends,
// sets nothing and is accepted). A plan without id gets the client's own
// ID for its incident (remediation.Plan.ClientWorkflowID:
// <kind>:<client>:<source>-<fingerprint>-<hash>), so that a client's
// proposals for one incident join, and never the ID of the intake's
// remediation of that incident or of another client's; a plan whose id is
// in those spaces (remediation.IsDerivedWorkflowID) is refused. It returns
// one FieldProblem per bad field; none means the plan is valid.
func decodePlanRequest(data []byte, p Principal) (remediation.Plan, []FieldProblem) {
	plan, err := remediation.DecodeBytes(data)
	if err != nil {
		return plan, planFieldProblems(err)
	}
	var fields []FieldProblem
	if plan.Requester != (remediation.Requester{}) {
		fields = append(fields, FieldProblem{Field: "requester",
			Detail: "must not be set: reins sets the requester from your authenticated identity; remove the field"})
	}
	if remediation.IsDerivedWorkflowID(plan.ID) {
		fields = append(fields, FieldProblem{Field: "id",
			Detail: `must not begin with "reins-", "agent:" or "human:": reins derives those IDs (for the event intake and for each client); leave id out to have your own derived from the incident, or choose another`})
	}
	plan.Requester = requesterOf(p)
	if err := plan.Validate(); err != nil {
		fields = append(fields, planFieldProblems(err)...)
	}
	if len(fields) == 0 {
		plan.ID = plan.ClientWorkflowID()
	}
	return plan, fields
}

// planFieldProblems turns a plan error into field problems.
func planFieldProblems(err error) []FieldProblem {
	var verr *remediation.ValidationError
	if !errors.As(err, &verr) {
		return []FieldProblem{{Field: "plan", Detail: err.Error()}}
	}
	out := make([]FieldProblem, len(verr.Errors))
	for i, fe := range verr.Errors {
		out[i] = FieldProblem{Field: fe.Field, Detail: fe.Message}
	}
	return out
}

func invalidPlanProblem(fields []FieldProblem) *Problem {
	return &Problem{Status: http.StatusUnprocessableEntity, Title: "Invalid plan",
		Detail: "the plan was refused and nothing was started; fix each field listed in errors", Errors: fields}
}

// propose starts the plan in data for the agent p; the problem is the refusal.
func (a *AgentAPI) propose(ctx context.Context, p Principal, data []byte) (AgentStarted, remediation.Plan, *Problem) {
	plan, fields := decodePlanRequest(data, p)
	if len(fields) > 0 {
		return AgentStarted{}, plan, invalidPlanProblem(fields)
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	st, err := a.opts.Remediations.Start(ctx, plan)
	if err != nil {
		var verr *remediation.ValidationError
		if errors.As(err, &verr) {
			return AgentStarted{}, plan, invalidPlanProblem(planFieldProblems(err))
		}
		a.log.Error("agent plan not started", "client", p.Name, "remediation", plan.WorkflowID(), "error", err)
		return AgentStarted{}, plan, agentUnavailable("Temporal did not accept the start; nothing was started")
	}
	return st, plan, nil
}

func agentUnavailable(detail string) *Problem {
	return &Problem{Status: http.StatusServiceUnavailable, Title: "Service unavailable", Detail: detail + "; retry later", RetryAfter: 5}
}

// agentMay reports whether p may see and abort a remediation with status st.
func agentMay(p Principal, st workflows.Status) bool {
	return p.Kind == KindHuman || (p.Kind == KindAgent && st.Requester == requesterOf(p).String())
}

// owned returns the status of remediation id if p may see it.
func (a *AgentAPI) owned(ctx context.Context, p Principal, id string) (workflows.Status, *Problem) {
	if id == "" || len(id) > maxIDBytes {
		return workflows.Status{}, &Problem{Status: http.StatusBadRequest, Title: "Bad request",
			Errors: []FieldProblem{{Field: "id", Detail: fmt.Sprintf("must be a remediation ID of 1 to %d bytes", maxIDBytes)}}}
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	st, err := a.opts.Remediations.Status(ctx, id)
	if errors.Is(err, ErrRemediationNotFound) || (err == nil && !agentMay(p, st)) {
		return workflows.Status{}, remediationNotFound(id)
	}
	if err != nil {
		a.log.Error("remediation status", "client", p.Name, "remediation", id, "error", err)
		return workflows.Status{}, agentUnavailable("the remediation's status could not be read")
	}
	return st, nil
}

func remediationNotFound(id string) *Problem {
	return &Problem{Status: http.StatusNotFound, Title: "Not found",
		Detail: fmt.Sprintf("no remediation %q that you requested", id)}
}

// abort aborts remediation id for p.
func (a *AgentAPI) abort(ctx context.Context, p Principal, id, reason string) *Problem {
	st, prob := a.owned(ctx, p, id)
	if prob != nil {
		return prob
	}
	if st.State != remediation.StateRunning {
		return &Problem{Status: http.StatusConflict, Title: "Conflict",
			Detail: fmt.Sprintf("remediation %s already ended (%s); there is nothing to abort", id, st.State)}
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	err := a.opts.Remediations.Abort(ctx, id, workflows.AbortSignal{Reason: reason, By: p.Kind + ":" + p.Name})
	switch {
	case errors.Is(err, ErrRemediationEnded), errors.Is(err, ErrRemediationNotFound):
		return &Problem{Status: http.StatusConflict, Title: "Conflict",
			Detail: fmt.Sprintf("remediation %s already ended; there is nothing to abort", id)}
	case err != nil:
		a.log.Error("abort remediation", "client", p.Name, "remediation", id, "error", err)
		return agentUnavailable("the abort could not be sent")
	}
	return nil
}

// agentStatusURL is the API path of remediation id's status.
// RemediationsPath is where plans are proposed (PatternProposeRemediation).
const RemediationsPath = "/v1/remediations"

func agentStatusURL(id string) string { return RemediationsPath + "/" + url.PathEscape(id) }

// uiURL links remediation id in the Temporal UI ("" when not configured).
func (a *AgentAPI) uiURL(id string) string {
	if a.opts.TemporalUI == "" || a.opts.Namespace == "" {
		return ""
	}
	return strings.TrimRight(a.opts.TemporalUI, "/") + "/namespaces/" + url.PathEscape(a.opts.Namespace) + "/workflows/" + url.PathEscape(id)
}

// ProposeResponse is the answer to POST /v1/remediations.
type ProposeResponse struct {
	AgentStarted
	// StatusURL is where to GET the remediation's status (also the Location header).
	StatusURL string `json:"status_url"`
	// UIURL shows the remediation in the Temporal UI.
	UIURL string `json:"ui_url,omitempty"`
}

// AbortRequest is the body of POST /v1/remediations/{id}/abort.
type AbortRequest struct {
	Reason string `json:"reason"`
}

// AbortResponse is the answer to an accepted abort.
type AbortResponse struct {
	ID        string `json:"id"`
	StatusURL string `json:"status_url"`
}

func (a *AgentAPI) servePropose(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	ev := agentEvent(r, doorAPI, "propose")
	if prob := a.admit(p); prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	data, prob := readAgentJSON(w, r, remediation.MaxPlanBytes, "a plan is at most %d bytes; split it into smaller plans")
	if prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	st, plan, prob := a.propose(r.Context(), p, data)
	if prob != nil {
		ev.Remediation = plan.ID
		a.refuse(w, r, ev, prob)
		return
	}
	ev.Remediation, ev.RunID, ev.Joined, ev.PlanDigest = st.ID, st.RunID, st.Joined, plan.Digest()
	a.record(r.Context(), AuditAgentStarted, ev)
	resp := ProposeResponse{AgentStarted: st, StatusURL: agentStatusURL(st.ID), UIURL: a.uiURL(st.ID)}
	w.Header().Set("Location", resp.StatusURL)
	writeAgentJSON(w, http.StatusAccepted, resp)
}

func (a *AgentAPI) serveStatus(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	ev := agentEvent(r, doorAPI, "status")
	ev.Remediation = r.PathValue("id")
	if prob := a.admit(p); prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	st, prob := a.owned(r.Context(), p, ev.Remediation)
	if prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	writeAgentJSON(w, http.StatusOK, st)
}

func (a *AgentAPI) serveAbort(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	ev := agentEvent(r, doorAPI, "abort")
	id := r.PathValue("id")
	ev.Remediation = id
	if prob := a.admit(p); prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	data, prob := readAgentJSON(w, r, maxAbortBytes, "an abort request is at most %d bytes")
	if prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	var req AbortRequest
	if prob := decodeAbortRequest(data, &req); prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	if prob := a.abort(r.Context(), p, id, req.Reason); prob != nil {
		a.refuse(w, r, ev, prob)
		return
	}
	writeAgentJSON(w, http.StatusAccepted, AbortResponse{ID: id, StatusURL: agentStatusURL(id)})
}

// decodeAbortRequest decodes an abort request strictly and checks its reason.
func decodeAbortRequest(data []byte, req *AbortRequest) *Problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	bad := func(field, detail string) *Problem {
		return &Problem{Status: http.StatusUnprocessableEntity, Title: "Invalid abort request",
			Detail: "nothing was aborted", Errors: []FieldProblem{{Field: field, Detail: detail}}}
	}
	if err := dec.Decode(req); err != nil {
		return bad("body", `must be one JSON object {"reason": "..."}: `+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("body", "has data after the JSON object; send exactly one")
	}
	switch {
	case strings.TrimSpace(req.Reason) == "":
		return bad("reason", "is required: why the remediation must stop, in a sentence")
	case len(req.Reason) > maxReasonBytes:
		return bad("reason", fmt.Sprintf("must be at most %d bytes", maxReasonBytes))
	}
	return nil
}

// readAgentJSON reads a JSON request body of at most limit bytes.
func readAgentJSON(w http.ResponseWriter, r *http.Request, limit int64, tooLarge string) ([]byte, *Problem) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, &Problem{Status: http.StatusUnsupportedMediaType, Title: "Unsupported media type",
			Detail: "send the body as JSON with Content-Type: application/json"}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &Problem{Status: http.StatusRequestEntityTooLarge, Title: "Request too large", Detail: fmt.Sprintf(tooLarge, limit)}
	case err != nil:
		return nil, &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "the request body could not be read"}
	}
	return data, nil
}

func writeAgentJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
