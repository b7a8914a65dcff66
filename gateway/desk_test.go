package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// deskTemporal is a fake DeskRemediations holding statuses by ID.
type deskTemporal struct {
	mu        sync.Mutex
	statuses  map[string]workflows.Status
	statusErr error
	signalErr error
	signalled []remediation.Approval
}

var _ DeskRemediations = (*deskTemporal)(nil)

func (f *deskTemporal) Status(_ context.Context, id string) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusErr != nil {
		return workflows.Status{}, f.statusErr
	}
	st, ok := f.statuses[id]
	if !ok {
		return workflows.Status{}, fmt.Errorf("query status of %s: %w", id, ErrRemediationNotFound)
	}
	return st, nil
}

func (f *deskTemporal) Approve(_ context.Context, a remediation.Approval) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.signalErr != nil {
		return f.signalErr
	}
	f.signalled = append(f.signalled, a)
	return nil
}

func (f *deskTemporal) sent() []remediation.Approval {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]remediation.Approval(nil), f.signalled...)
}

// deskSink reads the desk's records.
type deskSink struct{ memorySink }

// last returns the type and data of the last record.
func (s *deskSink) last(t *testing.T) (string, DeskAuditData) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) == 0 {
		t.Fatal("nothing recorded")
	}
	rec := s.recs[len(s.recs)-1]
	var d DeskAuditData
	if err := json.Unmarshal(rec.Data, &d); err != nil {
		t.Fatal(err)
	}
	return rec.Type, d
}

func (s *deskSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

const (
	deskID     = "reins-alertmanager-4f1c2a"
	deskRun    = "0192f1c2-run-2"
	deskDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	deskOther  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

var deskNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// deskStatus is a running remediation by agent sre-agent (owned by dana)
// whose step 1 awaits one co-signer from oncall-sre (escalation: sre-leads).
func deskStatus() workflows.Status {
	return workflows.Status{
		ID:          deskID,
		RunID:       deskRun,
		State:       remediation.StateRunning,
		Requester:   "agent:sre-agent",
		RequestedBy: remediation.Requester{Kind: remediation.RequesterAgent, Name: "sre-agent", Owner: "dana"},
		Steps: []workflows.StepStatus{
			{Index: 0, Description: "scale shop/deployment/checkout to 6", Digest: deskOther, State: remediation.StepDone},
			{Index: 1, Description: "set image of shop/deployment/checkout", Digest: deskDigest, State: remediation.StepAwaitingApproval,
				Decision: &remediation.Decision{Effect: remediation.EffectCosign, Approvers: 2, Group: "oncall-sre", EscalationGroup: "sre-leads"}},
			{Index: 2, Description: "restart shop/deployment/checkout", State: remediation.StepPending},
		},
	}
}

type deskFixture struct {
	desk *Desk
	tmp  *deskTemporal
	sink *deskSink
	pub  ed25519.PublicKey
}

func newDeskFixture(t *testing.T, st workflows.Status) deskFixture {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sink := &deskSink{}
	rec, err := NewRecorder([]AuditSink{sink}, "default", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tmp := &deskTemporal{statuses: map[string]workflows.Status{st.ID: st}}
	desk, err := NewDesk(DeskOptions{
		Remediations: tmp, Signer: Signer{KeyID: "gw", Key: priv}, Recorder: rec,
		Now:    func() time.Time { return deskNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return deskFixture{desk: desk, tmp: tmp, sink: sink, pub: pub}
}

// deskVote is bob (in oncall-sre only) approving step 1.
func deskVote() Vote {
	return Vote{
		Remediation: deskID, Run: deskRun, Step: 1, Digest: deskDigest,
		Approver: remediation.Approver{ID: "bob", Name: "Bob", Source: "slack"},
		InGroup:  deskGroups("oncall-sre"),
		Verdict:  remediation.VerdictApprove, Comment: "checked the 5xx graph",
	}
}

func deskGroups(groups ...string) func(context.Context, string) (bool, error) {
	return func(_ context.Context, g string) (bool, error) {
		for _, x := range groups {
			if x == g {
				return true, nil
			}
		}
		return false, nil
	}
}

func TestDeskSignalsASignedApproval(t *testing.T) {
	f := newDeskFixture(t, deskStatus())
	res, err := f.desk.Decide(context.Background(), deskVote())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Signalled || res.Refusal != "" || res.Group != "oncall-sre" {
		t.Fatalf("result %+v, want signalled in oncall-sre", res)
	}
	sent := f.tmp.sent()
	if len(sent) != 1 {
		t.Fatalf("%d approvals signalled, want 1", len(sent))
	}
	a := sent[0]
	if err := a.Verify(map[string]ed25519.PublicKey{"gw": f.pub}); err != nil {
		t.Fatalf("the signalled approval does not verify: %v", err)
	}
	want := remediation.Approval{Remediation: deskID, Run: deskRun, StepDigest: deskDigest, Approver: remediation.Approver{ID: "bob", Name: "Bob", Source: "slack"},
		Group: "oncall-sre", Verdict: remediation.VerdictApprove, Comment: "checked the 5xx graph", At: deskNow, KeyID: "gw"}
	a.Signature = nil
	if a.Remediation != want.Remediation || a.Run != want.Run || a.StepDigest != want.StepDigest || a.Approver != want.Approver || a.Group != want.Group ||
		a.Verdict != want.Verdict || a.Comment != want.Comment || !a.At.Equal(want.At) || a.KeyID != want.KeyID {
		t.Errorf("approval %+v, want %+v", a, want)
	}
	// The workflow's own rule accepts it.
	rule := remediation.ApprovalRule{Remediation: deskID, Run: deskRun, StepDigest: deskDigest, Requester: deskStatus().RequestedBy, Groups: []string{"oncall-sre"}}
	if why := rule.Check(sent[0]); why != "" {
		t.Errorf("the workflow would refuse the desk's approval: %s", why)
	}
	typ, d := f.sink.last(t)
	if typ != AuditApprovalSignalled || d.Remediation != deskID || d.Step != 1 || d.Approver.ID != "bob" || d.Group != "oncall-sre" ||
		d.KeyID != "gw" || d.SignedAt != deskNow.Format(time.RFC3339Nano) || d.StepDigest != deskDigest {
		t.Errorf("recorded %s %+v", typ, d)
	}
}

func TestDeskEmptyDigestMeansTheCurrentStep(t *testing.T) {
	f := newDeskFixture(t, deskStatus())
	v := deskVote()
	v.Digest = ""
	v.Verdict = remediation.VerdictDeny
	res, err := f.desk.Decide(context.Background(), v)
	if err != nil || !res.Signalled {
		t.Fatalf("result %+v, %v", res, err)
	}
	if a := f.tmp.sent()[0]; a.StepDigest != deskDigest || a.Verdict != remediation.VerdictDeny {
		t.Errorf("signalled %+v", a)
	}
}

func TestDeskEscalationGroupOnceEscalated(t *testing.T) {
	lead := deskVote()
	lead.Approver = remediation.Approver{ID: "erin", Source: "cli"}
	lead.InGroup = deskGroups("sre-leads")

	f := newDeskFixture(t, deskStatus())
	res, err := f.desk.Decide(context.Background(), lead)
	if err != nil || res.Signalled || res.Kind != RefusedNotInGroup || !strings.Contains(res.Refusal, `erin is not in group "oncall-sre"`) {
		t.Fatalf("before escalation: %+v, %v", res, err)
	}

	st := deskStatus()
	st.Steps[1].Escalated = true
	f = newDeskFixture(t, st)
	res, err = f.desk.Decide(context.Background(), lead)
	if err != nil || !res.Signalled || res.Group != "sre-leads" || f.tmp.sent()[0].Group != "sre-leads" {
		t.Fatalf("after escalation: %+v, %v", res, err)
	}
	outsider := deskVote()
	outsider.InGroup = deskGroups("payments")
	res, err = f.desk.Decide(context.Background(), outsider)
	if err != nil || res.Kind != RefusedNotInGroup || !strings.Contains(res.Refusal, `in neither group "oncall-sre" nor its escalation group "sre-leads"`) {
		t.Fatalf("outsider after escalation: %+v, %v", res, err)
	}
}

func TestDeskRefusals(t *testing.T) {
	counted := deskStatus()
	counted.Steps[1].Approvals = []workflows.ApprovalRecord{
		{Approver: remediation.Approver{ID: "carol"}, Counted: false, Reason: "signature"},
		{Approver: remediation.Approver{ID: "bob"}, Group: "oncall-sre", Verdict: remediation.VerdictApprove, Counted: true},
	}
	ended := deskStatus()
	ended.State = remediation.StateDenied
	decided := deskStatus()
	decided.Steps[1].State = remediation.StepDone
	human := deskStatus()
	human.RequestedBy = remediation.Requester{Kind: remediation.RequesterHuman, Name: "bob"}

	cases := []struct {
		name   string
		status workflows.Status
		vote   func(*Vote)
		kind   RefusalKind
		want   string
	}{
		{"unknown remediation", deskStatus(), func(v *Vote) { v.Remediation = "nope" }, RefusedUnknown, `there is no remediation "nope"`},
		{"step out of range", deskStatus(), func(v *Vote) { v.Step = 3 }, RefusedNotAwaiting, "has no step 3 (its steps are 0 to 2)"},
		{"ended", ended, func(*Vote) {}, RefusedNotAwaiting, "has ended (Denied)"},
		{"already decided", decided, func(*Vote) {}, RefusedNotAwaiting, "step 1 (set image of shop/deployment/checkout) was already decided: it is done"},
		{"done step", deskStatus(), func(v *Vote) { v.Step, v.Digest = 0, deskOther }, RefusedNotAwaiting, "was already decided"},
		{"not asked yet", deskStatus(), func(v *Vote) { v.Step, v.Digest = 2, "" }, RefusedNotAwaiting, "has not asked for co-signature: it is pending"},
		{"another version", deskStatus(), func(v *Vote) { v.Digest = deskOther }, RefusedStale, "not the version you were shown (digest fedcba987654… shown, 0123456789ab… now)"},
		{"an earlier run's message", deskStatus(), func(v *Vote) { v.Run = "0192f1c2-run-1" }, RefusedStale, "this message is from an earlier run of remediation " + deskID},
		{"requester", human, func(*Vote) {}, RefusedRequester, "bob requested remediation " + deskID + " and cannot co-sign"},
		{"agent's owner", deskStatus(), func(v *Vote) { v.Approver.ID = "dana" }, RefusedRequester, "dana owns the requesting agent sre-agent"},
		// Identities compare without regard to case (Slack lower-cases e-mail addresses).
		{"requester in other case", human, func(v *Vote) { v.Approver.ID = "BOB" }, RefusedRequester, "BOB requested remediation " + deskID},
		{"owner in other case", deskStatus(), func(v *Vote) { v.Approver.ID = "Dana" }, RefusedRequester, "Dana owns the requesting agent sre-agent"},
		{"counted in other case", counted, func(v *Vote) { v.Approver.ID = "Bob" }, RefusedCounted, "Bob is already counted for step 1"},
		{"agent itself", deskStatus(), func(v *Vote) { v.Approver.ID = "sre-agent" }, RefusedRequester, "sre-agent requested remediation"},
		{"already counted", counted, func(*Vote) {}, RefusedCounted, "bob is already counted for step 1; another approver is needed"},
		{"counted also refuses a deny", counted, func(v *Vote) { v.Verdict = remediation.VerdictDeny }, RefusedCounted, "already counted"},
		{"not in group", deskStatus(), func(v *Vote) { v.InGroup = deskGroups("sre-leads") }, RefusedNotInGroup, `bob is not in group "oncall-sre", which must co-sign step 1`},
		{"bad verdict", deskStatus(), func(v *Vote) { v.Verdict = "maybe" }, RefusedInvalid, `verdict: must be "approve" or "deny", got "maybe"`},
		{"long comment", deskStatus(), func(v *Vote) { v.Comment = strings.Repeat("é", MaxCommentChars+1) }, RefusedInvalid, "comment: must be UTF-8 text of at most 1000 characters"},
		{"negative step", deskStatus(), func(v *Vote) { v.Step = -1 }, RefusedInvalid, "step: must be a step index"},
		{"malformed digest", deskStatus(), func(v *Vote) { v.Digest = "abc" }, RefusedInvalid, "digest: must be a step digest"},
		{"no remediation", deskStatus(), func(v *Vote) { v.Remediation = "" }, RefusedInvalid, "remediation: must be a workflow ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newDeskFixture(t, c.status)
			v := deskVote()
			c.vote(&v)
			res, err := f.desk.Decide(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			if res.Signalled || res.Kind != c.kind || !strings.Contains(res.Refusal, c.want) {
				t.Fatalf("result %+v, want a %s refusal containing %q", res, c.kind, c.want)
			}
			if n := len(f.tmp.sent()); n != 0 {
				t.Errorf("%d approvals signalled after a refusal", n)
			}
			typ, d := f.sink.last(t)
			if typ != AuditApprovalRefused || d.Remediation != v.Remediation || d.Step != v.Step || d.Approver.ID != v.Approver.ID ||
				d.Reason != res.Refusal || d.Kind != c.kind || d.KeyID != "" {
				t.Errorf("recorded %s %+v", typ, d)
			}
			if len([]rune(d.Comment)) > MaxCommentChars {
				t.Errorf("recorded a comment of %d characters", len([]rune(d.Comment)))
			}
		})
	}
}

func TestDeskInfrastructureFailuresAreErrors(t *testing.T) {
	down := errors.New("connection refused")
	t.Run("status", func(t *testing.T) {
		f := newDeskFixture(t, deskStatus())
		f.tmp.statusErr = down
		if _, err := f.desk.Decide(context.Background(), deskVote()); !errors.Is(err, down) {
			t.Fatalf("error %v, want the status failure", err)
		}
		if f.sink.count() != 0 {
			t.Error("an unanswered vote was recorded as refused")
		}
	})
	t.Run("signal", func(t *testing.T) {
		f := newDeskFixture(t, deskStatus())
		f.tmp.signalErr = down
		if _, err := f.desk.Decide(context.Background(), deskVote()); !errors.Is(err, down) {
			t.Fatalf("error %v, want the signal failure", err)
		}
	})
	t.Run("group check", func(t *testing.T) {
		f := newDeskFixture(t, deskStatus())
		v := deskVote()
		v.InGroup = func(context.Context, string) (bool, error) { return false, down }
		if _, err := f.desk.Decide(context.Background(), v); !errors.Is(err, down) || !strings.Contains(err.Error(), "is bob in group oncall-sre") {
			t.Fatalf("error %v, want the group check failure", err)
		}
		if n := len(f.tmp.sent()); n != 0 {
			t.Errorf("%d approvals signalled without a group check", n)
		}
	})
	t.Run("ended before the signal", func(t *testing.T) {
		f := newDeskFixture(t, deskStatus())
		f.tmp.signalErr = fmt.Errorf("send approval: %w", ErrRemediationNotFound)
		res, err := f.desk.Decide(context.Background(), deskVote())
		if err != nil || res.Kind != RefusedNotAwaiting || !strings.Contains(res.Refusal, "ended before your decision reached it") {
			t.Fatalf("result %+v, %v", res, err)
		}
	})
	t.Run("no approver", func(t *testing.T) {
		f := newDeskFixture(t, deskStatus())
		v := deskVote()
		v.Approver.ID = ""
		if _, err := f.desk.Decide(context.Background(), v); err == nil {
			t.Fatal("a vote without an approver was decided")
		}
	})
}

func TestDeskAnswersWhenAuditFails(t *testing.T) {
	f := newDeskFixture(t, deskStatus())
	f.sink.err = errors.New("disk full")
	res, err := f.desk.Decide(context.Background(), deskVote())
	if err != nil || !res.Signalled {
		t.Fatalf("result %+v, %v: the approval was signalled, the answer must say so", res, err)
	}
	if f.sink.count() != 1 {
		t.Errorf("%d records attempted, want 1", f.sink.count())
	}
}

func TestNewDeskNamesWhatIsMissing(t *testing.T) {
	_, err := NewDesk(DeskOptions{Signer: Signer{Key: make([]byte, 10)}})
	if err == nil {
		t.Fatal("NewDesk accepted empty options")
	}
	for _, want := range []string{"no Temporal client", "approvals.signing_key_id", "approvals.signing_key_file", "no audit recorder"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
