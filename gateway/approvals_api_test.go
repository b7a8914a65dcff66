package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// apiTokens authenticates by bearer token from a fixed map.
type apiTokens map[string]Principal

func (a apiTokens) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, known := a[tok]; ok && known {
		return p, nil
	}
	return Principal{}, ErrUnauthenticated
}

var apiClients = apiTokens{
	"bob-token":   {Name: "bob", Kind: KindHuman, Groups: []string{"oncall-sre"}},
	"dana-token":  {Name: "dana", Kind: KindHuman, Groups: []string{"oncall-sre", "sre-leads"}},
	"erin-token":  {Name: "erin", Kind: KindHuman, Groups: []string{"payments"}},
	"agent-token": {Name: "sre-agent", Kind: KindAgent, Owner: "dana"},
}

// apiServer serves the approvals API over f's desk, mounted as documented.
func apiServer(t *testing.T, f deskFixture) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(ApprovalsPattern, NewApprovalsAPI(f.desk, apiClients))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// apiPost posts body as token to remediation id's approvals and decodes the answer.
func apiPost(t *testing.T, srv *httptest.Server, id, token, body string) (*http.Response, ApprovalResponse, Problem) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+ApprovalsPath(id), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ok ApprovalResponse
	var p Problem
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&ok)
	} else {
		if ct := resp.Header.Get("Content-Type"); ct != ProblemMediaType {
			t.Errorf("%s answered with %q, want %s", resp.Status, ct, ProblemMediaType)
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
	}
	if err != nil {
		t.Fatalf("%s: decode the answer: %v", resp.Status, err)
	}
	return resp, ok, p
}

func TestApprovalsAPISignals(t *testing.T) {
	f := newDeskFixture(t, deskStatus())
	srv := apiServer(t, f)
	resp, ok, _ := apiPost(t, srv, deskID, "bob-token", `{"step": 1, "verdict": "approve", "comment": "looks right", "digest": "`+deskDigest+`"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	want := ApprovalResponse{Signalled: true, Remediation: deskID, Step: 1, Verdict: remediation.VerdictApprove, Approver: "bob", Group: "oncall-sre"}
	if ok != want {
		t.Errorf("answer %+v, want %+v", ok, want)
	}
	sent := f.tmp.sent()
	if len(sent) != 1 {
		t.Fatalf("%d approvals signalled, want 1", len(sent))
	}
	if a := sent[0]; a.Approver != (remediation.Approver{ID: "bob", Name: "bob", Source: "cli"}) || a.Comment != "looks right" || a.StepDigest != deskDigest {
		t.Errorf("signalled %+v", a)
	}
}

func TestApprovalsAPIRefusals(t *testing.T) {
	counted := deskStatus()
	counted.Steps[1].Approvals = []workflows.ApprovalRecord{{Approver: remediation.Approver{ID: "bob"}, Counted: true}}
	cases := []struct {
		name   string
		status workflows.Status
		id     string
		token  string
		body   string
		code   int
		detail string
	}{
		{"not in group", deskStatus(), deskID, "erin-token", `{"step": 1, "verdict": "approve"}`, 403, `erin is not in group "oncall-sre"`},
		{"agent's owner", deskStatus(), deskID, "dana-token", `{"step": 1, "verdict": "approve"}`, 403, "dana owns the requesting agent sre-agent"},
		{"already counted", counted, deskID, "bob-token", `{"step": 1, "verdict": "approve"}`, 409, "bob is already counted"},
		{"decided step", deskStatus(), deskID, "bob-token", `{"step": 0, "verdict": "deny"}`, 409, "was already decided"},
		{"another version", deskStatus(), deskID, "bob-token", `{"step": 1, "verdict": "approve", "digest": "` + deskOther + `"}`, 409, "not the version you were shown"},
		{"unknown remediation", deskStatus(), "reins-nope", "bob-token", `{"step": 1, "verdict": "approve"}`, 404, `there is no remediation "reins-nope"`},
		{"unauthenticated", deskStatus(), deskID, "", `{"step": 1, "verdict": "approve"}`, 401, "Authorization: Bearer"},
		{"wrong token", deskStatus(), deskID, "guess", `{"step": 1, "verdict": "approve"}`, 401, "Authorization: Bearer"},
		{"agent", deskStatus(), deskID, "agent-token", `{"step": 1, "verdict": "approve"}`, 403, "this endpoint serves humans"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newDeskFixture(t, c.status)
			srv := apiServer(t, f)
			resp, _, p := apiPost(t, srv, c.id, c.token, c.body)
			if resp.StatusCode != c.code || p.Status != c.code || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("%s %+v, want %d with detail containing %q", resp.Status, p, c.code, c.detail)
			}
			if n := len(f.tmp.sent()); n != 0 {
				t.Errorf("%d approvals signalled", n)
			}
		})
	}
}

func TestApprovalsAPIBadInput(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		code  int
		field string
	}{
		{"unknown field", `{"step": 1, "verdict": "approve", "approver": "alice"}`, 400, "approver"},
		{"step as a string", `{"step": "1", "verdict": "approve"}`, 400, "step"},
		{"verdict as a number", `{"step": 1, "verdict": 1}`, 400, "verdict"},
		{"not JSON", `step=1`, 400, "(body)"},
		{"empty", ``, 400, "(body)"},
		{"two objects", `{"step": 1, "verdict": "approve"} {}`, 400, "(body)"},
		{"missing step", `{"verdict": "approve"}`, 422, "step"},
		{"missing verdict", `{"step": 1}`, 422, "verdict"},
		{"bad verdict", `{"step": 1, "verdict": "yes"}`, 422, "verdict"},
		{"negative step", `{"step": -2, "verdict": "approve"}`, 422, "step"},
		{"long comment", fmt.Sprintf(`{"step": 1, "verdict": "approve", "comment": %q}`, strings.Repeat("x", MaxCommentChars+1)), 422, "comment"},
		{"malformed digest", `{"step": 1, "verdict": "approve", "digest": "XYZ"}`, 422, "digest"},
		{"oversize", `{"step": 1, "verdict": "approve", "comment": "` + strings.Repeat("x", 20<<10) + `"}`, 413, "(body)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newDeskFixture(t, deskStatus())
			srv := apiServer(t, f)
			resp, _, p := apiPost(t, srv, deskID, "bob-token", c.body)
			if resp.StatusCode != c.code || len(p.Errors) == 0 || p.Errors[0].Field != c.field || !strings.HasPrefix(p.Detail, c.field+": ") {
				t.Fatalf("%s %+v, want %d naming %q", resp.Status, p, c.code, c.field)
			}
			if n := len(f.tmp.sent()); n != 0 {
				t.Errorf("%d approvals signalled", n)
			}
		})
	}
}

func TestApprovalsAPITemporalDown(t *testing.T) {
	f := newDeskFixture(t, deskStatus())
	f.tmp.statusErr = errors.New("connection refused")
	srv := apiServer(t, f)
	resp, _, p := apiPost(t, srv, deskID, "bob-token", `{"step": 1, "verdict": "approve"}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "nothing was signalled") {
		t.Fatalf("%s %+v", resp.Status, p)
	}
	if strings.Contains(p.Detail, "connection refused") {
		t.Errorf("the problem leaks the internal error: %s", p.Detail)
	}
}
