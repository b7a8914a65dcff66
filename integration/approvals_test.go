//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/vaultclient"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// The approval door end to end: the gateway's approvals API (what `reins
// approve` calls) over a real desk, signalling a real worker on the dev
// Temporal server, and approvals sent straight to Temporal around it.

// approvalsPolicy is the bundle of the approval doors' tests (the API's and
// Slack's): scale steps run, every other step needs one co-signer from
// oncall-sre (two in environment quorum-two), escalating to sre-leads after
// 15 minutes, or after 1 second in environments escalating (then 10
// minutes to decide) and escalate-expire (then expired after 6 seconds).
const approvalsPolicy = `package reins.policy

default quorum := 1

quorum := 2 if input.environment == "quorum-two"

default escalate_after := 900

escalate_after := 1 if input.environment in {"escalating", "escalate-expire"}

default timeout := 600

timeout := 6 if input.environment == "escalate-expire"

decision := {"effect": "allow", "risk": "low", "reasons": ["the approvals test bundle lets scale steps run"]} if {
	input.step.action == "kubernetes.scale"
}

decision := {
	"effect": "cosign",
	"risk": "high",
	"approvers": quorum,
	"group": "oncall-sre",
	"escalation_group": "sre-leads",
	"escalate_after_seconds": escalate_after,
	"timeout_seconds": timeout,
	"reasons": [sprintf("the approvals test bundle asks for %d co-signer(s)", [quorum])],
} if {
	input.step.action != "kubernetes.scale"
}
`

// deskTokens is the test's authenticator: bearer token → principal.
type deskTokens map[string]gateway.Principal

func (d deskTokens) Authenticate(r *http.Request) (gateway.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, known := d[tok]; ok && known {
		return p, nil
	}
	return gateway.Principal{}, gateway.ErrUnauthenticated
}

// deskHuman is a human client in groups.
func deskHuman(name string, groups ...string) gateway.Principal {
	return gateway.Principal{Name: name, Kind: gateway.KindHuman, Groups: groups}
}

var deskHumans = deskTokens{
	"alice-token":   deskHuman("alice", "oncall-sre"),
	"bob-token":     deskHuman("bob", "oncall-sre"),
	"carol-token":   deskHuman("carol", "oncall-sre"),
	"dana-token":    deskHuman("dana", "oncall-sre"),
	"erin-token":    deskHuman("erin", "sre-leads"),
	"mallory-token": deskHuman("mallory", "payments"),
}

// deskAudit reads the desk's records.
type deskAudit struct{ gatewayAudit }

// of returns the records of typ about remediation id.
func (s *deskAudit) of(t *testing.T, typ, id string) []gateway.DeskAuditData {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []gateway.DeskAuditData
	for _, rec := range s.recs {
		var d gateway.DeskAuditData
		if err := json.Unmarshal(rec.Data, &d); err != nil {
			t.Fatal(err)
		}
		if rec.Type == typ && d.Remediation == id {
			out = append(out, d)
		}
	}
	return out
}

// deskGateway is a worker with the approvals test bundle and the gateway,
// with the approvals API mounted, served by httptest; the gateway signs with
// the key the worker trusts, read from Vault.
type deskGateway struct {
	w     worker
	url   string
	audit *deskAudit
}

func startDeskGateway(t *testing.T) deskGateway {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(approvalsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, dir)
	audit := &deskAudit{}
	key := deskKeyFromVault(t, w.signer)
	rec, err := gateway.NewRecorder([]gateway.AuditSink{audit}, stack.temporal.Namespace, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	desk, err := gateway.NewDesk(gateway.DeskOptions{
		Remediations: gateway.TemporalDeskRemediations(stack.client),
		Signer:       gateway.Signer{KeyID: "it", Key: key},
		Recorder:     rec,
		Logger:       stack.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestGateway(t)
	srv.Handle(gateway.ApprovalsPattern, gateway.NewApprovalsAPI(desk, deskHumans))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return deskGateway{w: w, url: hs.URL, audit: audit}
}

// deskKeyFromVault keeps the gateway's signing key in Vault (KV v2, as
// approvals.signing_key_vault names it) and reads it back as the gateway
// does when it starts.
func deskKeyFromVault(t *testing.T, key ed25519.PrivateKey) ed25519.PrivateKey {
	t.Helper()
	path := "secret/data/reins-it/" + unique("gateway")
	if _, err := vaultRoot(t).Logical().Write(path, map[string]any{
		"data": map[string]any{workers.SigningKeyVaultField: base64.StdEncoding.EncodeToString(key)},
	}); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(tokenFile, []byte(stack.vault.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := workers.DefaultConfig()
	cfg.Vault.Addr = stack.vault.Addr
	cfg.Vault.Auth = workers.VaultAuthConfig{Method: vaultclient.MethodToken, TokenFile: tokenFile}
	cfg.Approvals.SigningKeyVault = path
	got, err := cfg.GatewaySigningKey(context.Background(), stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Fatal("the signing key read from Vault is not the one written")
	}
	return got
}

// vote posts an approval of remediation id as token's human, as `reins
// approve` does, and returns the status code with the answer or the problem.
func (g deskGateway) vote(t *testing.T, token, id string, req gateway.ApprovalRequest) (int, gateway.ApprovalResponse, gateway.Problem) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequest(http.MethodPost, g.url+gateway.ApprovalsPath(id), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ok gateway.ApprovalResponse
	var p gateway.Problem
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&ok)
	} else {
		err = json.NewDecoder(resp.Body).Decode(&p)
	}
	if err != nil {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	return resp.StatusCode, ok, p
}

// wantSignalled fails unless token's human's verdict on step i was signalled.
func (g deskGateway) wantSignalled(t *testing.T, token, id string, i int, verdict remediation.Verdict, comment string) gateway.ApprovalResponse {
	t.Helper()
	code, ok, p := g.vote(t, token, id, gateway.ApprovalRequest{Step: &i, Verdict: verdict, Comment: comment})
	if code != http.StatusOK || !ok.Signalled {
		t.Fatalf("%s of step %d as %s: %d %+v", verdict, i, token, code, p)
	}
	return ok
}

// wantRefused fails unless token's human's approval of step i is refused
// with code and a detail containing want.
func (g deskGateway) wantRefused(t *testing.T, token, id string, i int, code int, want string) {
	t.Helper()
	got, _, p := g.vote(t, token, id, gateway.ApprovalRequest{Step: &i, Verdict: remediation.VerdictApprove})
	if got != code || !strings.Contains(p.Detail, want) {
		t.Fatalf("approval of step %d as %s: %d %+v, want %d with %q", i, token, got, p, code, want)
	}
}

// deskSignals are the approval signals in remediation id's history.
func deskSignals(t *testing.T, id string) []remediation.Approval {
	t.Helper()
	return readHistory(t, fetchHistory(t, id)).signals
}

// deskStatusOf queries remediation id.
func deskStatusOf(t *testing.T, id string) workflows.Status {
	t.Helper()
	st, err := workflows.GetStatus(context.Background(), stack.client, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// deskAbort aborts run and waits for it to end Aborted, so that nothing
// is left running when the worker stops.
func deskAbort(t *testing.T, ctx context.Context, run sdkclient.WorkflowRun) workflows.Status {
	t.Helper()
	if err := workflows.Abort(ctx, stack.client, run.GetID(), workflows.AbortSignal{Reason: "test over", By: "integration"}); err != nil {
		t.Fatal(err)
	}
	st, err := workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateAborted)
	return st
}

func deskSetImage(ns, name, image string) remediation.Step {
	return step(remediation.ActionSetImage, remediation.KindDeployment, ns, name, remediation.Params{Container: "app", Image: image})
}

// deskPlan makes Deployment name (n replicas of registry.example/<name>:v1)
// in a new namespace, and returns that namespace and a production plan,
// requested by alice, setting its image to :v2: a step the approvals test
// bundle asks one co-signer of oncall-sre for.
func deskPlan(t *testing.T, name string, n int32) (string, remediation.Plan) {
	t.Helper()
	ns := namespace(t)
	deployment(t, ns, name, n, "registry.example/"+name+":v1")
	p := plan("production", deskSetImage(ns, name, "registry.example/"+name+":v2"))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	return ns, p
}

// An approval through the gateway is signed, signalled, counted, and the
// step runs.
func TestGatewayApprovalRunsTheStep(t *testing.T) {
	g := startDeskGateway(t)
	ns, p := deskPlan(t, "checkout", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, st := g.w.startAwaiting(t, ctx, p, 0)

	digest := st.Steps[0].Digest
	step0 := 0
	code, ok, prob := g.vote(t, "bob-token", run.GetID(), gateway.ApprovalRequest{Step: &step0, Verdict: remediation.VerdictApprove, Comment: "checked the 5xx graph", Digest: digest})
	want := gateway.ApprovalResponse{Signalled: true, Remediation: run.GetID(), Step: 0, Verdict: remediation.VerdictApprove, Approver: "bob", Group: "oncall-sre"}
	if code != http.StatusOK || ok != want {
		t.Fatalf("approve: %d %+v %+v, want %+v", code, ok, prob, want)
	}
	st = wantCompleted(t, ctx, run)
	if img := specOf(getDeployment(t, ns, "checkout")).Images[0]; img != "registry.example/checkout:v2" {
		t.Errorf("image %s after the approved step", img)
	}
	recs := st.Steps[0].Approvals
	if len(recs) != 1 || !recs[0].Counted || recs[0].Approver != (remediation.Approver{ID: "bob", Name: "bob", Source: "cli"}) ||
		recs[0].Group != "oncall-sre" || recs[0].Comment != "checked the 5xx graph" {
		t.Errorf("the workflow's approvals: %+v", recs)
	}
	sigs := deskSignals(t, st.ID)
	if len(sigs) != 1 || sigs[0].KeyID != "it" || sigs[0].StepDigest != digest || len(sigs[0].Signature) == 0 {
		t.Errorf("approval signals in history: %+v", sigs)
	}
	if recorded := g.audit.of(t, gateway.AuditApprovalSignalled, st.ID); len(recorded) != 1 || recorded[0].Approver.ID != "bob" || recorded[0].KeyID != "it" {
		t.Errorf("gateway audit: %+v", recorded)
	}
	recordHistory(t, st.ID, "TestGatewayApprovalRunsTheStep-"+st.ID)
}

// A deny through the gateway denies the step: the done step before it is
// compensated and the remediation ends Denied.
func TestGatewayDenyCompensates(t *testing.T) {
	g := startDeskGateway(t)
	ns := namespace(t)
	deployment(t, ns, "cart", 2, "registry.example/cart:v1")
	p := plan("production",
		step(remediation.ActionScale, remediation.KindDeployment, ns, "cart", replicas(3)),
		deskSetImage(ns, "cart", "registry.example/cart:v2"))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, _ := g.w.startAwaiting(t, ctx, p, 1)
	if got := specOf(getDeployment(t, ns, "cart")).Replicas; got != 3 {
		t.Fatalf("step 0 did not run before step 1 waited: %d replicas", got)
	}
	g.wantSignalled(t, "carol-token", run.GetID(), 1, remediation.VerdictDeny, "not during the sale")
	st, err := workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateDenied)
	if !strings.Contains(st.Reason, "denied by carol: not during the sale") {
		t.Errorf("reason %q", st.Reason)
	}
	if st.Steps[0].State != remediation.StepCompensated || st.Steps[1].State != remediation.StepDenied {
		t.Errorf("steps %s, %s", st.Steps[0].State, st.Steps[1].State)
	}
	if got := specOf(getDeployment(t, ns, "cart")); got.Replicas != 2 || got.Images[0] != "registry.example/cart:v1" {
		t.Errorf("after the deny: %+v, want 2 replicas of v1", got)
	}
}

// With a quorum of two, the same human approving twice is counted once: the
// gateway refuses the second click, the workflow refuses the same approval
// signalled around the gateway, and the step waits for a second human.
func TestGatewayQuorumNeedsTwoHumans(t *testing.T) {
	g := startDeskGateway(t)
	ns := namespace(t)
	deployment(t, ns, "pay", 1, "registry.example/pay:v1")
	p := plan("quorum-two", deskSetImage(ns, "pay", "registry.example/pay:v2"))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, st := g.w.startAwaiting(t, ctx, p, 0)
	if st.Steps[0].Decision.Approvers != 2 {
		t.Fatalf("the policy asked for %d approvers, want 2", st.Steps[0].Decision.Approvers)
	}
	id := run.GetID()
	g.wantSignalled(t, "bob-token", id, 0, remediation.VerdictApprove, "")
	waitFor(t, "bob counted", func() (bool, error) {
		st = deskStatusOf(t, id)
		return len(st.Steps[0].Approvals) == 1 && st.Steps[0].Approvals[0].Counted, nil
	})
	g.wantRefused(t, "bob-token", id, 0, http.StatusConflict, "bob is already counted for step 0; another approver is needed")

	// bob's signed approval, replayed straight to Temporal.
	again := deskSignals(t, id)[0]
	if err := workflows.Approve(ctx, stack.client, again); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replayed approval recorded", func() (bool, error) {
		st = deskStatusOf(t, id)
		return len(st.Steps[0].Approvals) == 2, nil
	})
	s := st.Steps[0]
	if s.State != remediation.StepAwaitingApproval || s.Approvals[1].Counted || !strings.Contains(s.Approvals[1].Reason, "already counted") {
		t.Fatalf("after bob's second approval: %s %+v", s.State, s.Approvals)
	}
	if st.State != remediation.StateRunning || specOf(getDeployment(t, ns, "pay")).Images[0] != "registry.example/pay:v1" {
		t.Fatal("the step ran with one human's approval")
	}

	g.wantSignalled(t, "carol-token", id, 0, remediation.VerdictApprove, "second pair of eyes")
	st = wantCompleted(t, ctx, run)
	if img := specOf(getDeployment(t, ns, "pay")).Images[0]; img != "registry.example/pay:v2" {
		t.Errorf("image %s after two approvals", img)
	}
}

// The requester, the requesting agent's owner and humans outside the group
// are refused by the gateway with 403, and nothing reaches the workflow.
func TestGatewayRefusesRequesterOwnerAndOutsiders(t *testing.T) {
	g := startDeskGateway(t)
	ns := namespace(t)
	deployment(t, ns, "api", 1, "registry.example/api:v1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	byHuman := plan("production", deskSetImage(ns, "api", "registry.example/api:v2"))
	byHuman.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	humanRun, _ := g.w.startAwaiting(t, ctx, byHuman, 0)
	byAgent := plan("production", deskSetImage(ns, "api", "registry.example/api:v3"))
	byAgent.Requester = remediation.Requester{Kind: remediation.RequesterAgent, Name: "sre-agent", Owner: "dana"}
	agentRun, _ := g.w.startAwaiting(t, ctx, byAgent, 0)

	g.wantRefused(t, "alice-token", humanRun.GetID(), 0, http.StatusForbidden, "alice requested remediation "+humanRun.GetID()+" and cannot co-sign its steps")
	g.wantRefused(t, "dana-token", agentRun.GetID(), 0, http.StatusForbidden, "dana owns the requesting agent sre-agent and cannot co-sign its steps")
	g.wantRefused(t, "mallory-token", humanRun.GetID(), 0, http.StatusForbidden, `mallory is not in group "oncall-sre", which must co-sign step 0`)
	// Not escalated: the escalation group may not co-sign yet.
	g.wantRefused(t, "erin-token", agentRun.GetID(), 0, http.StatusForbidden, `erin is not in group "oncall-sre"`)
	// Refusals that are not about who you are: 409 and 404.
	g.wantRefused(t, "bob-token", humanRun.GetID(), 3, http.StatusConflict, "has no step 3")
	g.wantRefused(t, "bob-token", "reins-no-such-remediation", 0, http.StatusNotFound, `there is no remediation "reins-no-such-remediation"`)

	for _, run := range []sdkclient.WorkflowRun{humanRun, agentRun} {
		if sigs := deskSignals(t, run.GetID()); len(sigs) != 0 {
			t.Errorf("%s: %d approval signals after refusals: %+v", run.GetID(), len(sigs), sigs)
		}
		if st := deskStatusOf(t, run.GetID()); st.Steps[0].State != remediation.StepAwaitingApproval || len(st.Steps[0].Approvals) != 0 {
			t.Errorf("%s step 0: %s %+v", run.GetID(), st.Steps[0].State, st.Steps[0].Approvals)
		}
	}
	refused := append(g.audit.of(t, gateway.AuditApprovalRefused, humanRun.GetID()), g.audit.of(t, gateway.AuditApprovalRefused, agentRun.GetID())...)
	who := map[string]gateway.RefusalKind{}
	for _, d := range refused {
		who[d.Approver.ID] = d.Kind
	}
	if len(refused) != 5 || who["alice"] != gateway.RefusedRequester || who["dana"] != gateway.RefusedRequester ||
		who["mallory"] != gateway.RefusedNotInGroup || who["erin"] != gateway.RefusedNotInGroup || who["bob"] != gateway.RefusedNotAwaiting {
		t.Errorf("gateway audit of the refusals: %+v", refused)
	}
	deskAbort(t, ctx, humanRun)
	deskAbort(t, ctx, agentRun)
}

// Once the step escalated, its escalation group may co-sign.
func TestGatewayEscalationGroupAfterEscalation(t *testing.T) {
	g := startDeskGateway(t)
	ns := namespace(t)
	deployment(t, ns, "search", 1, "registry.example/search:v1")
	p := plan("escalating", deskSetImage(ns, "search", "registry.example/search:v2"))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, _ := g.w.startAwaiting(t, ctx, p, 0)
	waitFor(t, "step 0 escalated", func() (bool, error) {
		return deskStatusOf(t, run.GetID()).Steps[0].Escalated, nil
	})
	if ok := g.wantSignalled(t, "erin-token", run.GetID(), 0, remediation.VerdictApprove, ""); ok.Group != "sre-leads" {
		t.Errorf("erin counted in %q, want sre-leads", ok.Group)
	}
	st := wantCompleted(t, ctx, run)
	if a := st.Steps[0].Approvals; len(a) != 1 || !a[0].Counted || a[0].Group != "sre-leads" {
		t.Errorf("approvals %+v", a)
	}
}

// Approvals sent straight to Temporal, around the gateway, change nothing:
// an unsigned one, and a correctly signed one replayed onto another step.
func TestApprovalsAroundTheGatewayAreIgnored(t *testing.T) {
	g := startDeskGateway(t)
	ns := namespace(t)
	deployment(t, ns, "web", 1, "registry.example/web:v1")
	deployment(t, ns, "worker", 1, "registry.example/worker:v1")
	p := plan("production",
		deskSetImage(ns, "web", "registry.example/web:v2"),
		deskSetImage(ns, "worker", "registry.example/worker:v2"))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, st := g.w.startAwaiting(t, ctx, p, 0)
	id := run.GetID()

	// Unsigned, otherwise what bob would have sent.
	unsigned := remediation.Approval{Remediation: id, Run: run.GetRunID(), StepDigest: st.Steps[0].Digest, Approver: remediation.Approver{ID: "bob", Source: "cli"},
		Group: "oncall-sre", Verdict: remediation.VerdictApprove, At: time.Now().UTC()}
	if err := workflows.Approve(ctx, stack.client, unsigned); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsigned approval recorded", func() (bool, error) {
		st = deskStatusOf(t, id)
		return len(st.Steps[0].Approvals) == 1, nil
	})
	if s := st.Steps[0]; s.State != remediation.StepAwaitingApproval || s.Approvals[0].Counted || !strings.Contains(s.Approvals[0].Reason, "signature") {
		t.Fatalf("after the unsigned approval: %s %+v", s.State, s.Approvals)
	}

	// bob approves step 0 through the gateway; step 1 then waits.
	g.wantSignalled(t, "bob-token", id, 0, remediation.VerdictApprove, "")
	waitFor(t, "step 1 awaiting approval", func() (bool, error) {
		st = deskStatusOf(t, id)
		return st.Steps[1].State == remediation.StepAwaitingApproval, nil
	})
	// bob's signed approval of step 0, replayed for step 1.
	sigs := deskSignals(t, id)
	replayed := sigs[len(sigs)-1]
	if replayed.StepDigest != st.Steps[0].Digest || len(replayed.Signature) == 0 {
		t.Fatalf("bob's approval in history: %+v", replayed)
	}
	if err := workflows.Approve(ctx, stack.client, replayed); err != nil {
		t.Fatal(err)
	}
	// And a fresh approval signed with the gateway's key but carrying the
	// digest of step 0, as if the human had been shown that step.
	other := remediation.Approval{Remediation: id, Run: run.GetRunID(), StepDigest: st.Steps[0].Digest, Approver: remediation.Approver{ID: "carol", Source: "cli"},
		Group: "oncall-sre", Verdict: remediation.VerdictApprove, At: time.Now().UTC()}.Sign("it", g.w.signer)
	if err := workflows.Approve(ctx, stack.client, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both step-0 approvals recorded on step 1", func() (bool, error) {
		st = deskStatusOf(t, id)
		return len(st.Steps[1].Approvals) == 2, nil
	})
	s := st.Steps[1]
	for _, a := range s.Approvals {
		if a.Counted || !strings.Contains(a.Reason, "approval is for another step") {
			t.Errorf("step 1 approval %+v counted or refused for the wrong reason", a)
		}
	}
	if s.State != remediation.StepAwaitingApproval || specOf(getDeployment(t, ns, "worker")).Images[0] != "registry.example/worker:v1" {
		t.Fatalf("step 1 moved on approvals of step 0: %s", s.State)
	}
	// The gateway also refuses a vote for step 1 with step 0's digest.
	step1 := 1
	code, _, prob := g.vote(t, "carol-token", id, gateway.ApprovalRequest{Step: &step1, Verdict: remediation.VerdictApprove, Digest: st.Steps[0].Digest})
	if code != http.StatusConflict || !strings.Contains(prob.Detail, "not the version you were shown") {
		t.Errorf("vote with another step's digest: %d %+v", code, prob)
	}
	st = deskAbort(t, ctx, run)
	if st.Steps[0].State != remediation.StepCompensated {
		t.Errorf("step 0 after the abort: %s", st.Steps[0].State)
	}
}

// A remediation ID is reused when its incident fires again, with the same
// plan and so the same step digests: a signed approval of the earlier run,
// copied from its history into the new run, does not count.
func TestApprovalOfAnEarlierRunIsIgnored(t *testing.T) {
	g := startDeskGateway(t)
	_, p := deskPlan(t, "api", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	first, _ := g.w.startAwaiting(t, ctx, p, 0)
	g.wantSignalled(t, "bob-token", first.GetID(), 0, remediation.VerdictApprove, "")
	st, err := workflows.Result(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateCompleted)
	signals := readHistory(t, fetchRunHistory(t, first.GetID(), first.GetRunID())).signals
	if len(signals) != 1 || signals[0].Run != first.GetRunID() {
		t.Fatalf("bob's approval in the first run's history: %+v, want one signed for run %s", signals, first.GetRunID())
	}

	second, st := g.w.startAwaiting(t, ctx, p, 0)
	if second.GetID() != first.GetID() || second.GetRunID() == first.GetRunID() || st.Steps[0].Digest != signals[0].StepDigest {
		t.Fatalf("second run %s/%s (digest %s): want the same remediation and step digest in a new run", second.GetID(), second.GetRunID(), st.Steps[0].Digest)
	}
	replayed := signals[0]
	if err := stack.client.SignalWorkflow(ctx, second.GetID(), "", workflows.SignalApproval, replayed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replayed approval recorded", func() (bool, error) {
		st = deskStatusOf(t, second.GetID())
		return len(st.Steps[0].Approvals) == 1, nil
	})
	if a := st.Steps[0].Approvals[0]; a.Counted || !strings.Contains(a.Reason, fmt.Sprintf("for run %q of this remediation, not this run", first.GetRunID())) {
		t.Fatalf("the first run's approval in the second run: %+v", a)
	}
	if st.Steps[0].State != remediation.StepAwaitingApproval {
		t.Fatalf("step 0 is %s after the replayed approval, want still awaiting", st.Steps[0].State)
	}
	deskAbort(t, ctx, second)
}

// `reins approve` goes through the gateway with the client token from the
// environment: a refusal exits 1 with the reason, an approval runs the step.
func TestCLIApproveThroughGateway(t *testing.T) {
	g := startDeskGateway(t)
	bin := buildReins(t)
	_, p := deskPlan(t, "checkout", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, st := g.w.startAwaiting(t, ctx, p, 0)
	id := run.GetID()

	cli := func(token string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "REINS_CONFIG=", "REINS_GATEWAY_URL="+g.url, "REINS_CLIENT_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &exit):
			return exit.ExitCode(), string(out)
		}
		t.Fatalf("run reins %v: %v", args, err)
		return 0, ""
	}
	code, out := cli("alice-token", "approve", id, "--step", "0")
	if code != 1 || !strings.Contains(out, "approve refused: alice requested remediation "+id+" and cannot co-sign its steps") {
		t.Fatalf("reins approve as the requester: exit %d\n%s", code, out)
	}
	code, out = cli("wrong-token", "deny", id, "--step", "0")
	if code != 1 || !strings.Contains(out, "did not accept your client token") {
		t.Fatalf("reins deny with a wrong token: exit %d\n%s", code, out)
	}
	code, out = cli("bob-token", "approve", id, "--step", "0", "--comment", "approved from the CLI", "--digest", st.Steps[0].Digest)
	if code != 0 || !strings.Contains(out, "approve of step 0 of "+id+" signalled as bob (group oncall-sre)") {
		t.Fatalf("reins approve: exit %d\n%s", code, out)
	}
	st = wantCompleted(t, ctx, run)
	if a := st.Steps[0].Approvals; len(a) != 1 || !a[0].Counted || a[0].Approver.ID != "bob" || a[0].Comment != "approved from the CLI" {
		t.Errorf("approvals %+v", a)
	}
	if sigs := deskSignals(t, id); len(sigs) != 1 {
		t.Errorf("%d approval signals, want bob's only", len(sigs))
	}
}
