package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/reins-dev/reins/remediation"
)

// ApprovalsPattern is where NewApprovalsAPI is mounted:
//
//	srv.Handle(gateway.ApprovalsPattern, gateway.NewApprovalsAPI(desk, auth))
const ApprovalsPattern = "POST /v1/remediations/{id}/approvals"

// ApprovalsPath is the path clients post remediation id's approvals to.
func ApprovalsPath(id string) string { return "/v1/remediations/" + url.PathEscape(id) + "/approvals" }

// maxApprovalBody bounds an approvals request body.
const maxApprovalBody = 16 << 10

// ApprovalRequest is the body of POST /v1/remediations/{id}/approvals.
type ApprovalRequest struct {
	// Step is the index of the step (required).
	Step *int `json:"step"`
	// Verdict is "approve" or "deny" (required).
	Verdict remediation.Verdict `json:"verdict"`
	// Comment is recorded with the decision (at most MaxCommentChars).
	Comment string `json:"comment,omitempty"`
	// Digest is the step digest the client showed; left out, the current one.
	Digest string `json:"digest,omitempty"`
}

// ApprovalResponse is the answer to an approval the gateway signalled.
type ApprovalResponse struct {
	Signalled   bool                `json:"signalled"`
	Remediation string              `json:"remediation"`
	Step        int                 `json:"step"`
	Verdict     remediation.Verdict `json:"verdict"`
	// Approver is who the gateway authenticated.
	Approver string `json:"approver"`
	// Group is the approver group the approval was signed for.
	Group string `json:"group"`
}

// NewApprovalsAPI serves ApprovalsPattern to human clients: it decides
// their vote on a step with desk, as the principal auth authenticates
// (their groups are the principal's). Answers:
//
//	200 ApprovalResponse           signed and signalled to the workflow
//	400, 413, 422 problem          malformed body; errors name the field
//	403 problem                    the requester or the agent's owner, or not in the step's group
//	404 problem                    no such remediation
//	409 problem                    no such step, ended, already decided, another version, already counted
//	503 problem                    Temporal or the group check could not be reached: retry
//
// A refusal's detail is the sentence the desk gave.
func NewApprovalsAPI(desk *Desk, auth Authenticator) http.Handler {
	return RequirePrincipal(auth, &approvalsAPI{desk: desk}, KindHuman)
}

type approvalsAPI struct{ desk *Desk }

func (a *approvalsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id := r.PathValue("id")
	if id == "" {
		WriteProblem(w, Problem{Status: http.StatusNotFound, Instance: r.URL.Path,
			Detail: "no remediation ID in the path: POST /v1/remediations/{id}/approvals"})
		return
	}
	req, fp, status := decodeApproval(w, r)
	if fp != nil {
		WriteProblem(w, Problem{Status: status, Instance: r.URL.Path, Detail: fp[0].Field + ": " + fp[0].Detail, Errors: fp})
		return
	}
	vote := Vote{
		Remediation: id,
		Step:        *req.Step,
		Digest:      req.Digest,
		Approver:    remediation.Approver{ID: p.Name, Name: p.Name, Source: "cli"},
		InGroup: func(_ context.Context, group string) (bool, error) {
			return slices.Contains(p.Groups, group), nil
		},
		Verdict: req.Verdict,
		Comment: req.Comment,
	}
	if fp := vote.problems(); len(fp) > 0 {
		WriteProblem(w, Problem{Status: http.StatusUnprocessableEntity, Instance: r.URL.Path, Detail: fp[0].Field + ": " + fp[0].Detail, Errors: fp})
		return
	}
	res, err := a.desk.Decide(r.Context(), vote)
	if err != nil {
		a.desk.log.Error("approval not decided", "remediation", id, "step", vote.Step, "approver", p.Name, "error", err)
		WriteProblem(w, Problem{Status: http.StatusServiceUnavailable, Instance: r.URL.Path, RetryAfter: 5,
			Detail: "the gateway could not reach Temporal to decide this approval; nothing was signalled: try again"})
		return
	}
	if !res.Signalled {
		WriteProblem(w, Problem{Status: refusalStatus(res.Kind), Title: "Approval refused", Instance: r.URL.Path, Detail: res.Refusal})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(ApprovalResponse{
		Signalled: true, Remediation: id, Step: vote.Step, Verdict: vote.Verdict, Approver: p.Name, Group: res.Group,
	})
}

// refusalStatus is the HTTP status of a refusal of kind.
func refusalStatus(kind RefusalKind) int {
	switch kind {
	case RefusedRequester, RefusedNotInGroup:
		return http.StatusForbidden
	case RefusedUnknown:
		return http.StatusNotFound
	case RefusedInvalid:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusConflict
	}
}

// decodeApproval reads the body strictly: one JSON object of known fields,
// within maxApprovalBody. On failure it returns the field problems and the
// status to answer with.
func decodeApproval(w http.ResponseWriter, r *http.Request) (ApprovalRequest, []FieldProblem, int) {
	var req ApprovalRequest
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return req, []FieldProblem{{Field: "(body)", Detail: "send application/json, not " + ct}}, http.StatusUnsupportedMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxApprovalBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return req, []FieldProblem{{Field: "(body)", Detail: "is larger than 16 KiB"}}, http.StatusRequestEntityTooLarge
	}
	if err != nil {
		return req, []FieldProblem{{Field: "(body)", Detail: "could not be read: " + err.Error()}}, http.StatusBadRequest
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, []FieldProblem{jsonProblem(err)}, http.StatusBadRequest
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, []FieldProblem{{Field: "(body)", Detail: "must hold exactly one JSON object"}}, http.StatusBadRequest
	}
	var fp []FieldProblem
	if req.Step == nil {
		fp = append(fp, FieldProblem{Field: "step", Detail: "is required: the index of the step, as reins status shows it"})
	}
	if req.Verdict == "" {
		fp = append(fp, FieldProblem{Field: "verdict", Detail: `is required: "approve" or "deny"`})
	}
	if fp != nil {
		return req, fp, http.StatusUnprocessableEntity
	}
	return req, nil, 0
}

// jsonProblem names the field a JSON decoding error is about.
func jsonProblem(err error) FieldProblem {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return FieldProblem{Field: typeErr.Field, Detail: "must be a JSON " + jsonKind(typeErr.Field) + ", not " + typeErr.Value}
	case errors.As(err, &syntaxErr):
		return FieldProblem{Field: "(body)", Detail: "is not valid JSON: " + err.Error()}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return FieldProblem{Field: "(body)", Detail: `is empty or cut short: send {"step": N, "verdict": "approve"|"deny"}`}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return FieldProblem{Field: strings.Trim(name, `"`), Detail: "is not a field of an approval (step, verdict, comment, digest)"}
	}
	return FieldProblem{Field: "(body)", Detail: err.Error()}
}

func jsonKind(field string) string {
	if field == "step" {
		return "integer"
	}
	return "string"
}
