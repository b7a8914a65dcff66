//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// wantAuditChain reads remediation st's records back from NATS (and from the
// file, when configured: byte for byte the same) and fails unless they form
// one intact chain ending in st's state. It returns the records.
func wantAuditChain(t testing.TB, cfg workers.AuditConfig, st workflows.Status) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The workflow ends only once every record is delivered: they are all there.
	fromNATS, err := workers.ReadAudit(ctx, cfg, "nats", st.ID, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	reps := audit.VerifyRuns(st.ID, "", fromNATS, false)
	if len(reps) != 1 || !reps[0].OK() || reps[0].End != st.State {
		t.Fatalf("audit chain of %s in NATS: %+v", st.ID, reps)
	}
	if cfg.File.Path != "" {
		fromFile, err := workers.ReadAudit(ctx, cfg, "file", st.ID, stack.logger)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fromFile, fromNATS) {
			t.Fatalf("the audit file holds %d records of %s, NATS %d, or they differ", len(fromFile), st.ID, len(fromNATS))
		}
	}
	return fromNATS
}

func recordTypes(t testing.TB, raws [][]byte) []string {
	t.Helper()
	var out []string
	for _, raw := range raws {
		rec, err := remediation.ParseAuditRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Type)
	}
	return out
}

func parseRecords(t testing.TB, raws [][]byte) []remediation.AuditRecord {
	t.Helper()
	out := make([]remediation.AuditRecord, len(raws))
	for i, raw := range raws {
		rec, err := remediation.ParseAuditRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = rec
	}
	return out
}

// hook is a webhook sink (a SIEM stand-in) that keeps every POST.
type hook struct {
	*httptest.Server
	mu    sync.Mutex
	posts []post
	// block, when set, decides whether a POST blocks until release is closed
	// (or the client goes away) and then fails.
	block   func(remediation.AuditRecord) bool
	blocked chan struct{}
	release chan struct{}
}

type post struct {
	key  string
	body []byte
}

func newHook(t *testing.T) *hook {
	h := &hook{blocked: make(chan struct{}), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Header.Get("Content-Type") != remediation.AuditMediaType {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		rec, err := remediation.ParseAuditRecord(body)
		if err != nil || rec.ID != r.Header.Get("Idempotency-Key") {
			http.Error(w, "not a record, or the key is not its id", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		block := h.block != nil && h.block(rec)
		if block {
			h.block = nil
		}
		h.mu.Unlock()
		if block {
			close(h.blocked)
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		h.mu.Lock()
		h.posts = append(h.posts, post{key: rec.ID, body: body})
		h.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(h.Close)
	return h
}

// received returns the distinct ids POSTed, in order, and how many POSTs each got.
// wantEach fails unless the webhook accepted every record exactly once, in
// chain order, with the same bytes as the other sinks.
func (h *hook) wantEach(t *testing.T, recs []remediation.AuditRecord, raws [][]byte) {
	t.Helper()
	ids, counts, bodies := h.received()
	if len(ids) != len(recs) {
		t.Fatalf("webhook accepted %d distinct records, want %d", len(ids), len(recs))
	}
	for i, rec := range recs {
		if ids[i] != rec.ID || counts[rec.ID] != 1 || !bytes.Equal(bodies[rec.ID], raws[i]) {
			t.Errorf("webhook record %d: id %s (want %s), %d accepted POSTs, same bytes %t", i+1, ids[i], rec.ID, counts[rec.ID], bytes.Equal(bodies[rec.ID], raws[i]))
		}
	}
}

func (h *hook) received() ([]string, map[string]int, map[string][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	count := map[string]int{}
	body := map[string][]byte{}
	for _, p := range h.posts {
		if count[p.key] == 0 {
			ids = append(ids, p.key)
			body[p.key] = p.body
		} else if !bytes.Equal(body[p.key], p.body) {
			body[p.key] = nil // same key, other body: never acceptable
		}
		count[p.key]++
	}
	return ids, count, body
}

// reinsCmd runs the reins binary against the test stack.
func reinsCmd(t *testing.T, bin, configPath string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+stack.temporal.Address,
		"TEMPORAL_NAMESPACE="+stack.temporal.Namespace,
		"REINS_CONFIG="+configPath,
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code = 0
	if err != nil {
		exitErr, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run reins %v: %v", args, err)
		}
		code = exitErr.ExitCode()
	}
	return out.String(), errOut.String(), code
}

func writeConfig(t *testing.T, cfg workers.Config, name string) string {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A production remediation with a refused and a counted co-signature, then
// a denied step and the compensation of the first: exactly the expected
// records, in NATS, in the file and at the webhook; `reins audit verify`
// passes on both sinks and names the record that was altered, deleted or
// reordered; the search attributes find it by requester and state; `reins
// explain` agrees with the history it was built from.
func TestAuditTrailOfApprovalAndCompensation(t *testing.T) {
	h := newHook(t)
	w := startWorker(t, "", func(c *workers.Config) { c.Audit.Webhook.URL = h.URL })
	ns := "shop-" + unique("audit")
	createNamespace(t, ns)
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	requester := unique("alice")
	p := plan("production",
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "checkout", remediation.Params{Container: "app", Image: "registry.example/checkout:v2"}),
		step(remediation.ActionScale, remediation.KindDeployment, ns, "checkout", replicas(0)))
	p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: requester}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, st := w.startAwaiting(t, ctx, p, 0)
	var err error
	approval := remediation.Approval{Remediation: run.GetID(), Run: run.GetRunID(), StepDigest: st.Steps[0].Digest, Group: st.Steps[0].Decision.Group,
		Verdict: remediation.VerdictApprove, At: time.Now().UTC().Truncate(time.Millisecond)}
	self := approval
	self.Approver = remediation.Approver{ID: requester, Source: "cli"}
	if err := workflows.Approve(ctx, stack.client, self.Sign("it", w.signer)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the self-approval refused", func() (bool, error) {
		st, err = workflows.GetStatus(ctx, stack.client, run.GetID())
		return err == nil && len(st.Steps[0].Approvals) == 1, err
	})
	bob := approval
	bob.Approver = remediation.Approver{ID: "bob", Name: "Bob", Source: "cli"}
	bob.Comment = "checked the 5xx graph"
	if err := workflows.Approve(ctx, stack.client, bob.Sign("it", w.signer)); err != nil {
		t.Fatal(err)
	}
	st, err = workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateDenied)
	recordHistory(t, st.ID, "TestAuditTrailOfApprovalAndCompensation-"+st.ID)

	// Exactly the expected records, the same in NATS and the file (checked
	// by wantAuditChain) and at the webhook.
	raws := wantAuditChain(t, w.cfg.Audit, st)
	want := []string{
		remediation.AuditStarted,
		remediation.AuditPolicyDecided, remediation.AuditApprovalRequested, remediation.AuditApprovalRefused, remediation.AuditApprovalGiven,
		remediation.AuditActionApplied, remediation.AuditVerificationPassed,
		remediation.AuditPolicyDecided,
		remediation.AuditCompensationApplied,
		remediation.AuditEnded,
	}
	// The approval request's notification is recorded when it was posted,
	// which may be before or after the approvals arrive: counted apart.
	var got []string
	notified := 0
	for _, typ := range recordTypes(t, raws) {
		if typ == remediation.AuditApprovalNotified {
			notified++
			continue
		}
		got = append(got, typ)
	}
	if !reflect.DeepEqual(got, want) || notified != 1 {
		t.Fatalf("record types (and %d %s)\n got %v\nwant %v", notified, remediation.AuditApprovalNotified, got, want)
	}
	recs := parseRecords(t, raws)
	h.wantEach(t, recs, raws)
	for i, rec := range recs {
		if rec.Subject != st.ID || rec.Source != "urn:reins:"+stack.temporal.Namespace {
			t.Errorf("record %d: subject %q source %q", i+1, rec.Subject, rec.Source)
		}
	}
	var refused, given remediation.AuditApprovalData
	for _, rec := range recs {
		var err error
		switch rec.Type {
		case remediation.AuditApprovalRefused:
			err = json.Unmarshal(rec.Data, &refused)
		case remediation.AuditApprovalGiven:
			err = json.Unmarshal(rec.Data, &given)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if refused.Approver.ID != requester || refused.Counted || !strings.Contains(refused.Reason, "cannot co-sign their own step") ||
		given.Approver.ID != "bob" || given.Approver.Source != "cli" || given.Comment != "checked the 5xx graph" || given.KeyID != "it" {
		t.Errorf("approval records: refused %+v, given %+v", refused, given)
	}
	for _, raw := range raws {
		if bytes.Contains(raw, w.signer) || bytes.Contains(raw, []byte(`"labels"`)) {
			t.Error("a record holds a key or the target's labels")
		}
	}

	t.Run("verify", func(t *testing.T) { verifyWithTheCLI(t, w.cfg, st, raws) })
	t.Run("search attributes", func(t *testing.T) { findByRequesterAndState(t, requester, st) })
	t.Run("explain", func(t *testing.T) { explainAgreesWithHistory(t, w.cfg, st, recs) })
}

// verifyWithTheCLI runs `reins audit verify` on both sinks, then on copies
// altered, missing or reordered records.
func verifyWithTheCLI(t *testing.T, cfg workers.Config, st workflows.Status, raws [][]byte) {
	bin := buildReins(t)
	cfgPath := writeConfig(t, cfg, "verify")
	for _, from := range []string{"nats", "file"} {
		out, errOut, code := reinsCmd(t, bin, cfgPath, "audit", "verify", "--from", from, "--remediation", st.ID)
		if want := fmt.Sprintf("audit chain OK: %d records", len(raws)); code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "ends Denied") {
			t.Errorf("verify --from %s: exit %d\n%s%s\nwant %q", from, code, out, errOut, want)
		}
	}

	recs := parseRecords(t, raws)
	// k is reins.action.applied, k+1 reins.verification.passed (where the
	// notification record falls decides k).
	k := -1
	for i, rec := range recs {
		if rec.Type == remediation.AuditActionApplied && k < 0 {
			k = i
		}
	}
	if k < 0 || recs[k+1].Type != remediation.AuditVerificationPassed {
		t.Fatalf("no %s followed by %s", remediation.AuditActionApplied, remediation.AuditVerificationPassed)
	}
	altered := append([][]byte(nil), raws...)
	altered[k] = bytes.Replace(raws[k], []byte(`"changed":true`), []byte(`"changed":false`), 1)
	if bytes.Equal(altered[k], raws[k]) {
		t.Fatalf("record #%d has no \"changed\":true to alter: %s", k+1, raws[k])
	}
	rehashed := append([][]byte(nil), raws...)
	var data map[string]any
	if err := json.Unmarshal(recs[k].Data, &data); err != nil {
		t.Fatal(err)
	}
	data["change"] = "nothing to see here"
	forged, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	rk := recs[k]
	rehashed[k], _, err = remediation.NewAuditRecord(rk.Source, rk.Subject, rk.RunID, rk.Type, rk.Seq, rk.Prev, rk.Time, forged)
	if err != nil {
		t.Fatal(err)
	}
	deleted := append(append([][]byte(nil), raws[:k]...), raws[k+1:]...)
	reordered := append([][]byte(nil), raws...)
	reordered[k], reordered[k+1] = reordered[k+1], reordered[k]
	cases := []struct {
		name    string
		records [][]byte
		want    string
	}{
		{"altered", altered, fmt.Sprintf("(#%d, id %s) is altered", k+1, recs[k].ID[:12])},
		{"deleted", deleted, fmt.Sprintf("record #%d (id %s) is missing", k+1, recs[k].ID[:12])},
		{"reordered", reordered, fmt.Sprintf("#%d reins.verification.passed (id %s) is out of order", k+2, recs[k+1].ID[:12])},
		{"re-hashed", rehashed, fmt.Sprintf("the chain breaks at #%d reins.action.applied", k+1)},
	}
	for _, c := range cases {
		t.Run("file "+c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if err := os.WriteFile(path, append(bytes.Join(c.records, []byte("\n")), '\n'), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := reinsCmd(t, bin, cfgPath, "audit", "verify", "--remediation", st.ID, "--file", path)
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 1 naming %q", code, errOut, out, c.want)
			}
		})
		t.Run("nats "+c.name, func(t *testing.T) {
			// The audit stream denies deletes: tampered copies go to a stream of their own.
			stream, prefix := "TAMPERED_"+strings.ToUpper(strings.ReplaceAll(c.name, "-", "_")), "tampered."+strings.ReplaceAll(c.name, "-", "")
			publishCopy(t, stream, prefix, st.ID, recs[0].RunID, c.records)
			tcfg := cfg
			tcfg.Audit.NATS.Stream, tcfg.Audit.NATS.Subject = stream, prefix
			out, errOut, code := reinsCmd(t, bin, writeConfig(t, tcfg, "tampered"), "audit", "verify", "--from", "nats", "--remediation", st.ID)
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 1 naming %q", code, errOut, out, c.want)
			}
		})
	}
}

// publishCopy puts records, as they are, into a stream of their own.
func publishCopy(t *testing.T, stream, prefix, id, run string, records [][]byte) {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(stack.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{prefix + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	subject := prefix + "." + audit.SubjectToken(id) + "." + audit.SubjectToken(run)
	for _, raw := range records {
		if _, err := js.Publish(ctx, subject, raw); err != nil {
			t.Fatal(err)
		}
	}
}

func findByRequesterAndState(t *testing.T, requester string, st workflows.Status) {
	ctx := context.Background()
	list := func(q string) ([]string, error) {
		resp, err := stack.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q})
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		return ids, nil
	}
	q := fmt.Sprintf("ReinsRequester = 'human:%s' AND ReinsState = 'Denied'", requester)
	waitFor(t, "visibility: "+q, func() (bool, error) {
		ids, err := list(q)
		return err == nil && len(ids) == 1 && ids[0] == st.ID, err
	})
	for _, q := range []string{
		fmt.Sprintf("ReinsRequester = 'human:%s' AND ReinsState = 'Completed'", requester),
		fmt.Sprintf("ReinsRequester = 'human:%s-nobody' AND ReinsState = 'Denied'", requester),
	} {
		if ids, err := list(q); err != nil || len(ids) != 0 {
			t.Errorf("%s found %v (%v), want nothing", q, ids, err)
		}
	}
	// The remediation's risk is its riskiest step's.
	rank := map[remediation.Risk]int{remediation.RiskLow: 1, remediation.RiskMedium: 2, remediation.RiskHigh: 3, remediation.RiskCritical: 4}
	var risk remediation.Risk
	for _, s := range st.Steps {
		if s.Decision != nil && rank[s.Decision.Risk] > rank[risk] {
			risk = s.Decision.Risk
		}
	}
	q = fmt.Sprintf("ReinsRequester = 'human:%s' AND ReinsEnvironment = 'production' AND ReinsTarget = '%s' AND ReinsRisk = '%s'", requester, st.Steps[0].Target, risk)
	if ids, err := list(q); err != nil || len(ids) != 1 {
		t.Errorf("%s found %v (%v), want %s", q, ids, err, st.ID)
	}
}

// historyFacts are what the history itself says, decoded independently of
// workflows.Explain.
type historyFacts struct {
	started, closed time.Time
	failureType     string
	failureMessage  string
	decisions       map[int]remediation.Decision
	signals         []remediation.Approval
	before          []remediation.Snapshot
	after           map[int]remediation.ExecuteResult
	compensated     []int
	executeSummary  string
	planDetails     string
	auditInputs     int
}

func readHistory(t *testing.T, h *historypb.History) historyFacts {
	t.Helper()
	dc := converter.GetDefaultDataConverter()
	dec := func(p *commonpb.Payloads, v any) {
		t.Helper()
		if err := dc.FromPayloads(p, v); err != nil {
			t.Fatal(err)
		}
	}
	f := historyFacts{decisions: map[int]remediation.Decision{}, after: map[int]remediation.ExecuteResult{}}
	type sched struct {
		name  string
		index int
	}
	scheduled := map[int64]sched{}
	for _, ev := range h.Events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			f.started = ev.GetEventTime().AsTime()
			if err := dc.FromPayload(ev.GetUserMetadata().GetDetails(), &f.planDetails); err != nil {
				t.Fatal(err)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			s := sched{name: a.GetActivityType().GetName()}
			switch s.name {
			case remediation.ActivityEvaluatePolicy:
				var in remediation.PolicyInput
				dec(a.GetInput(), &in)
				s.index = in.Index
			case remediation.ActivityExecute:
				var in remediation.ExecuteInput
				dec(a.GetInput(), &in)
				s.index = in.Index
				if err := dc.FromPayload(ev.GetUserMetadata().GetSummary(), &f.executeSummary); err != nil {
					t.Fatal(err)
				}
			case remediation.ActivityCompensate:
				var in remediation.CompensateInput
				dec(a.GetInput(), &in)
				s.index = in.Index
			case remediation.ActivityRecordAudit:
				f.auditInputs++
			}
			scheduled[ev.GetEventId()] = s
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			s := scheduled[a.GetScheduledEventId()]
			switch s.name {
			case remediation.ActivityEvaluatePolicy:
				var res remediation.PolicyResult
				dec(a.GetResult(), &res)
				f.decisions[s.index] = res.Decision
			case remediation.ActivityObserve:
				var res remediation.ObserveResult
				dec(a.GetResult(), &res)
				f.before = append(f.before, res.Snapshot)
			case remediation.ActivityExecute:
				var res remediation.ExecuteResult
				dec(a.GetResult(), &res)
				f.after[s.index] = res
			case remediation.ActivityCompensate:
				f.compensated = append(f.compensated, s.index)
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			// The workflow reads targets with a local activity.
			m := ev.GetMarkerRecordedEventAttributes()
			var la struct{ ActivityType string }
			if m.GetMarkerName() != "LocalActivity" {
				continue
			}
			if dec(m.GetDetails()["data"], &la); la.ActivityType == remediation.ActivityObserve {
				var res remediation.ObserveResult
				dec(m.GetDetails()["result"], &res)
				f.before = append(f.before, res.Snapshot)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			a := ev.GetWorkflowExecutionSignaledEventAttributes()
			if a.GetSignalName() == workflows.SignalApproval {
				var ap remediation.Approval
				dec(a.GetInput(), &ap)
				f.signals = append(f.signals, ap)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			f.closed = ev.GetEventTime().AsTime()
			failure := ev.GetWorkflowExecutionFailedEventAttributes().GetFailure()
			f.failureType, f.failureMessage = failure.GetApplicationFailureInfo().GetType(), failure.GetMessage()
		}
	}
	return f
}

func explainAgreesWithHistory(t *testing.T, cfg workers.Config, st workflows.Status, recs []remediation.AuditRecord) {
	ctx := context.Background()
	e, err := workflows.Explain(ctx, stack.client, st.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := readHistory(t, fetchHistory(t, st.ID))

	if e.End == nil || string(e.End.State) != f.failureType || e.End.Reason != f.failureMessage || e.WorkflowStatus != "Failed" {
		t.Errorf("end %+v (workflow %s), history says %s: %s", e.End, e.WorkflowStatus, f.failureType, f.failureMessage)
	}
	if !e.StartedAt.Equal(f.started) || e.ClosedAt == nil || !e.ClosedAt.Equal(f.closed) {
		t.Errorf("started %v closed %v; history %v %v", e.StartedAt, e.ClosedAt, f.started, f.closed)
	}
	for _, entry := range e.Timeline {
		if entry.At.Before(f.started) || entry.At.After(f.closed) {
			t.Errorf("timeline entry %+v outside the run (%v – %v)", entry, f.started, f.closed)
		}
	}
	if len(e.Steps) != 2 {
		t.Fatalf("%d steps", len(e.Steps))
	}
	for i, s := range e.Steps {
		if s.Decision == nil || !reflect.DeepEqual(*s.Decision, f.decisions[i]) {
			t.Errorf("step %d decision %+v, history %+v", i, s.Decision, f.decisions[i])
		}
	}
	s0 := e.Steps[0]
	if len(s0.Approvals) != len(f.signals) {
		t.Fatalf("step 0: %d approvals explained, %d signals in history", len(s0.Approvals), len(f.signals))
	}
	for i, a := range s0.Approvals {
		sig := f.signals[i]
		if a.Approver != sig.Approver || a.Group != sig.Group || a.Verdict != sig.Verdict || a.KeyID != sig.KeyID || a.SignedAt != sig.At.UTC().Format(time.RFC3339Nano) {
			t.Errorf("approval %d: explained %+v, signal %+v", i, a, sig)
		}
	}
	if s0.Approvals[0].Outcome != "refused" || s0.Approvals[1].Outcome != "given" {
		t.Errorf("outcomes %s, %s", s0.Approvals[0].Outcome, s0.Approvals[1].Outcome)
	}
	if s0.Applied == nil || !reflect.DeepEqual(s0.Applied.Before, f.before[0].Brief()) || !reflect.DeepEqual(s0.Applied.After, f.after[0].After.Brief()) ||
		s0.Applied.Changed != f.after[0].Changed {
		t.Errorf("step 0 action %+v; history before %+v after %+v", s0.Applied, f.before[0].Brief(), f.after[0].After.Brief())
	}
	if s0.Verification == nil || !s0.Verification.Passed || e.Steps[1].Applied != nil {
		t.Errorf("verification %+v, step 1 applied %+v", s0.Verification, e.Steps[1].Applied)
	}
	var undone []int
	for _, c := range e.Compensations {
		undone = append(undone, c.Step)
	}
	if !reflect.DeepEqual(undone, f.compensated) || s0.State != remediation.StepCompensated || e.Steps[1].State != remediation.StepDenied {
		t.Errorf("compensations %v, history %v; states %s %s", undone, f.compensated, s0.State, e.Steps[1].State)
	}
	if e.Audit.Records != f.auditInputs || e.Audit.Records != len(recs) || e.Audit.Head != recs[len(recs)-1].ID || !e.Audit.Intact {
		t.Errorf("audit %+v; %d records in history, %d in NATS", e.Audit, f.auditInputs, len(recs))
	}
	wantSummary := fmt.Sprintf("set image of %s container app registry.example/checkout:v1→registry.example/checkout:v2 — approved by bob", st.Steps[0].Target)
	if f.executeSummary != wantSummary {
		t.Errorf("execute summary %q, want %q", f.executeSummary, wantSummary)
	}
	if want := "1. " + st.Steps[0].Description + " — "; !strings.Contains(f.planDetails, want) || !strings.Contains(f.planDetails, "**Requested by** human:") {
		t.Errorf("the workflow's details %q lack %q", f.planDetails, want)
	}

	var text bytes.Buffer
	if err := e.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("reins explain %s:\n%s", st.ID, text.String())
	for _, want := range []string{
		"remediation " + st.ID + ": Denied",
		"policy: cosign, risk high, 1 co-signer(s) from oncall-sre",
		"approval from " + f.signals[0].Approver.ID + " refused (via cli",
		"approved by bob (Bob) (via cli, group oncall-sre",
		"applied: set image of " + st.Steps[0].Target,
		"policy: deny",
		"undone: set image of " + st.Steps[0].Target + " container app back to registry.example/checkout:v1",
		"ended Denied: ",
		"chain intact",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("explain text lacks %q:\n%s", want, text.String())
		}
	}

	// The CLI says the same.
	bin := buildReins(t)
	out, errOut, code := reinsCmd(t, bin, writeConfig(t, cfg, "explain"), "explain", st.ID, "--output", "json")
	if code != 0 {
		t.Fatalf("reins explain: exit %d: %s", code, errOut)
	}
	var fromCLI workflows.Explanation
	if err := json.Unmarshal([]byte(out), &fromCLI); err != nil {
		t.Fatal(err)
	}
	inProcess, _ := json.Marshal(e)
	viaCLI, _ := json.Marshal(fromCLI)
	if !bytes.Equal(inProcess, viaCLI) {
		t.Errorf("reins explain --output json differs from the explanation:\n%s\n%s", viaCLI, inProcess)
	}
}

// A worker killed (SIGKILL) after a step acted, while its audit record was
// being delivered (stored in NATS and the file, the webhook holding the
// request): a new worker delivers it again; NATS and the file keep one copy,
// the webhook gets it under the same Idempotency-Key, and the chain has no
// gap and no duplicate.
func TestAuditWorkerKilledBetweenActionAndRecord(t *testing.T) {
	bin := buildReins(t)
	h := newHook(t)
	h.block = func(rec remediation.AuditRecord) bool { return rec.Type == remediation.AuditActionApplied }
	queue := unique("reins-audit-crash")
	policyDir, err := filepath.Abs("testdata/allow-all")
	if err != nil {
		t.Fatal(err)
	}
	cfg := workers.DefaultConfig()
	cfg.TaskQueue, cfg.PolicyDir, cfg.Credentials = queue, policyDir, workers.CredentialsStatic
	cfg.Audit.NATS.URL = stack.nats.URL
	cfg.Audit.File.Path = filepath.Join(stack.dir, queue+"-audit.jsonl")
	cfg.Audit.Webhook.URL = h.URL
	cfgPath := writeConfig(t, cfg, queue)

	ctx := context.Background()
	ns := namespace(t)
	deployment(t, ns, "web", 2, "registry.example/web:v1")
	first := workerProcess(t, bin, cfgPath, queue+"-first")
	p := plan("staging", step(remediation.ActionScale, remediation.KindDeployment, ns, "web", replicas(3)))
	run, _, err := workflows.Start(ctx, stack.client, queue, workflows.RemediationInput{Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.blocked:
	case <-time.After(2 * time.Minute):
		t.Fatal("the action's audit record never reached the webhook")
	}
	// Between the action and its audit record: the change is made, the
	// record is in NATS and the file, and its delivery has not finished.
	if got := *getDeployment(t, ns, "web").Spec.Replicas; got != 3 {
		t.Fatalf("replicas %d while the action's record is delivered, want 3", got)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	close(h.release)
	workerProcess(t, bin, cfgPath, queue+"-second")

	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := workflows.Result(wctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateCompleted)

	raws := wantAuditChain(t, cfg.Audit, st)
	want := []string{remediation.AuditStarted, remediation.AuditPolicyDecided, remediation.AuditActionApplied,
		remediation.AuditVerificationPassed, remediation.AuditEnded}
	if got := recordTypes(t, raws); !reflect.DeepEqual(got, want) {
		t.Fatalf("record types\n got %v\nwant %v", got, want)
	}
	recs := parseRecords(t, raws)
	h.wantEach(t, recs, raws)

	// In history: each record scheduled once; the action's record delivered
	// by a second attempt that found it already in NATS and the file.
	dc := converter.GetDefaultDataConverter()
	scheduled := map[int64]remediation.RecordAuditInput{}
	inputs := 0
	for _, ev := range fetchHistory(t, st.ID).Events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			if a.GetActivityType().GetName() == remediation.ActivityRecordAudit {
				var in remediation.RecordAuditInput
				if err := dc.FromPayloads(a.GetInput(), &in); err != nil {
					t.Fatal(err)
				}
				scheduled[ev.GetEventId()] = in
				inputs++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			in, ok := scheduled[a.GetScheduledEventId()]
			if !ok {
				continue
			}
			rec, err := remediation.ParseAuditRecord(in.Record)
			if err != nil {
				t.Fatal(err)
			}
			var res remediation.RecordAuditResult
			if err := dc.FromPayloads(a.GetResult(), &res); err != nil {
				t.Fatal(err)
			}
			if rec.Type == remediation.AuditActionApplied {
				if !reflect.DeepEqual(res.Present, []string{"nats", "file"}) || !reflect.DeepEqual(res.Stored, []string{"webhook"}) {
					t.Errorf("the action's record on its retry: stored %v, already present %v; want webhook stored, nats and file present", res.Stored, res.Present)
				}
			}
		}
	}
	if inputs != len(recs) {
		t.Errorf("%d audit activities scheduled, %d records", inputs, len(recs))
	}
	rs, err := stack.kc.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(rs.Items) != 1 {
		t.Errorf("%d ReplicaSets (%v), want 1: a scale makes none", len(rs.Items), err)
	}
	recordHistory(t, st.ID, "TestAuditWorkerKilledBetweenActionAndRecord-"+st.ID)
}
