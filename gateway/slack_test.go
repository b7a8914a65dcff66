package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/slackapp"
)

const (
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// slackSink reads the Slack door's records.
type slackSink struct{ memorySink }

func (s *slackSink) ofType(typ string) []remediation.AuditRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []remediation.AuditRecord
	for _, r := range s.recs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

type fakeDirectory struct {
	users  map[string]remediation.Approver
	groups map[string][]string
	err    error
}

func (d *fakeDirectory) Lookup(_ context.Context, id string) (remediation.Approver, error) {
	if d.err != nil {
		return remediation.Approver{}, d.err
	}
	a, ok := d.users[id]
	if !ok {
		return remediation.Approver{}, errors.Join(slackapp.ErrNotApprover, errors.New(id+" is deactivated"))
	}
	return a, nil
}

func (d *fakeDirectory) InGroup(_ context.Context, group, id string) (bool, error) {
	members, ok := d.groups[group]
	if !ok {
		return false, slackapp.ErrUnknownGroup
	}
	for _, m := range members {
		if m == id {
			return true, nil
		}
	}
	return false, nil
}

// fakeDesk records votes and answers with result; block, when set, holds
// Decide until it is closed or the context ends.
type fakeDesk struct {
	mu      sync.Mutex
	votes   []Vote
	inGroup []bool
	result  DeskResult
	err     error
	block   chan struct{}
	ctxErr  error
}

func (d *fakeDesk) Decide(ctx context.Context, v Vote) (DeskResult, error) {
	in, err := v.InGroup(ctx, "oncall")
	d.mu.Lock()
	d.votes = append(d.votes, v)
	d.inGroup = append(d.inGroup, in)
	block := d.block
	d.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			d.mu.Lock()
			d.ctxErr = ctx.Err()
			d.mu.Unlock()
			return DeskResult{}, ctx.Err()
		}
	}
	if err != nil {
		return DeskResult{}, err
	}
	return d.result, d.err
}

func (d *fakeDesk) seen() []Vote {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Vote(nil), d.votes...)
}

type fakeResponder struct{ replies chan [2]string }

func (r *fakeResponder) Ephemeral(_ context.Context, u, text string) error {
	r.replies <- [2]string{u, text}
	return nil
}

type slackFixture struct {
	srv   *httptest.Server
	door  *Slack
	desk  *fakeDesk
	dir   *fakeDirectory
	resp  *fakeResponder
	sink  *slackSink
	now   time.Time
	value string
}

func newSlackFixture(t *testing.T, mut ...func(*SlackOptions)) *slackFixture {
	t.Helper()
	f := &slackFixture{
		desk: &fakeDesk{result: DeskResult{Signalled: true, Group: "oncall"}},
		dir: &fakeDirectory{
			users:  map[string]remediation.Approver{"U0ALICE": {ID: "alice@example.com", Name: "Alice", Source: "slack"}},
			groups: map[string][]string{"oncall": {"U0ALICE"}},
		},
		resp: &fakeResponder{replies: make(chan [2]string, 16)},
		sink: &slackSink{},
		now:  time.Now(),
	}
	f.value, _ = slackapp.ButtonValue{Remediation: "reins-am-1", Run: deskRun, Step: 1, Digest: slackDigest}.Encode()
	v, err := slackapp.NewVerifier(slackSecret, slackapp.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder([]AuditSink{f.sink}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := SlackOptions{Verifier: v, Directory: f.dir, Desk: f.desk, Responder: f.resp, Recorder: rec}
	for _, m := range mut {
		m(&opts)
	}
	f.door, err = NewSlack(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(SlackInteractionsPattern, f.door)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.srv.Close()
		if f.desk.block != nil {
			select {
			case <-f.desk.block:
			default:
				close(f.desk.block)
			}
		}
		_ = f.door.Shutdown(context.Background())
	})
	return f
}

// body is a click's form body by user on action.
func (f *slackFixture) body(user, action string) []byte {
	p := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "username": "u", "team_id": "T0ACME"},
		"team":         map[string]any{"id": "T0ACME"},
		"container":    map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0SRE"},
		"response_url": "https://hooks.slack.com/actions/T0ACME/1/xyz",
		"actions":      []any{map[string]any{"type": "button", "action_id": action, "block_id": slackapp.BlockDecide, "value": f.value, "action_ts": "1700000001.1"}},
	}
	b, _ := json.Marshal(p)
	return []byte(url.Values{"payload": {string(b)}}.Encode())
}

// post sends body signed with secret at t.
func (f *slackFixture) post(t *testing.T, body []byte, secret string, at time.Time) *http.Response {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/slack/interactions", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(slackapp.HeaderTimestamp, ts)
	req.Header.Set(slackapp.HeaderSignature, slackapp.SignatureHeader([]byte(secret), ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (f *slackFixture) reply(t *testing.T) [2]string {
	t.Helper()
	select {
	case r := <-f.resp.replies:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no ephemeral reply")
	}
	return [2]string{}
}

func TestSlackClickReachesTheDesk(t *testing.T) {
	f := newSlackFixture(t)
	if resp := f.post(t, f.body("U0ALICE", slackapp.ActionApprove), slackSecret, f.now); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed click: %s", resp.Status)
	}
	r := f.reply(t)
	if r[0] != "https://hooks.slack.com/actions/T0ACME/1/xyz" || !strings.Contains(r[1], "approval of step 1 of reins-am-1 was sent as alice@example.com") {
		t.Fatalf("reply %q", r)
	}
	votes := f.desk.seen()
	want := Vote{Remediation: "reins-am-1", Step: 1, Digest: slackDigest, Approver: remediation.Approver{ID: "alice@example.com", Name: "Alice", Source: "slack"}, Verdict: "approve"}
	if len(votes) != 1 {
		t.Fatalf("%d votes", len(votes))
	}
	got := votes[0]
	if got.Remediation != want.Remediation || got.Step != want.Step || got.Digest != want.Digest || got.Approver != want.Approver ||
		got.Verdict != want.Verdict || got.Comment != "" {
		t.Fatalf("vote %+v, want %+v", got, want)
	}
	// InGroup asks the directory about the user who clicked.
	if !f.desk.inGroup[0] {
		t.Fatal("InGroup does not ask the directory about the clicking user")
	}
	if n := len(f.sink.ofType(AuditSlackRejected)); n != 0 {
		t.Fatalf("%d rejections recorded", n)
	}
}

func TestSlackRefusalsAreAnswered(t *testing.T) {
	f := newSlackFixture(t)
	f.desk.result = DeskResult{Refusal: "alice@example.com requested remediation reins-am-1 and cannot co-sign its steps", Kind: RefusedRequester}
	f.post(t, f.body("U0ALICE", slackapp.ActionDeny), slackSecret, f.now)
	if r := f.reply(t); r[1] != "Your denial of step 1 of reins-am-1 was not counted: alice@example.com requested remediation reins-am-1 and cannot co-sign its steps." {
		t.Fatalf("reply %q", r[1])
	}

	// A Slack user who cannot approve never reaches the desk; the refusal is recorded.
	before := len(f.desk.seen())
	f.post(t, f.body("U0GONE", slackapp.ActionApprove), slackSecret, f.now)
	if r := f.reply(t); !strings.Contains(r[1], "was not counted") || !strings.Contains(r[1], "deactivated") {
		t.Fatalf("reply %q", r[1])
	}
	if len(f.desk.seen()) != before {
		t.Fatal("a deactivated user's click reached the desk")
	}
	recs := f.sink.ofType(AuditApprovalRefused)
	var refused DeskAuditData
	if len(recs) != 1 || json.Unmarshal(recs[0].Data, &refused) != nil || refused.Approver.ID != "U0GONE" || refused.Kind != RefusedNotApprover {
		t.Fatalf("refusal records %v, want one of U0GONE as %s", recs, RefusedNotApprover)
	}

	// Slack down: the user is told to try again; nothing reaches the desk.
	f.dir.err = errors.New("slack users.info: 503")
	f.post(t, f.body("U0ALICE", slackapp.ActionApprove), slackSecret, f.now.Add(time.Second))
	if r := f.reply(t); !strings.Contains(r[1], "could not look you up") || !strings.Contains(r[1], "reins approve reins-am-1 --step 1") {
		t.Fatalf("reply %q", r[1])
	}
	f.dir.err = nil

	// Temporal down (a desk error): try again.
	f.desk.err = errors.New("approval desk: context deadline exceeded")
	f.post(t, f.body("U0ALICE", slackapp.ActionDeny), slackSecret, f.now.Add(2*time.Second))
	if r := f.reply(t); !strings.Contains(r[1], "could not record your denial") || !strings.Contains(r[1], "reins deny reins-am-1 --step 1") {
		t.Fatalf("reply %q", r[1])
	}
	// An approver group without a Slack user group says so.
	f.desk.err = errors.Join(errors.New("approval desk: is alice in group oncall"), slackapp.ErrUnknownGroup)
	f.post(t, f.body("U0ALICE", slackapp.ActionApprove), slackSecret, f.now.Add(3*time.Second))
	if r := f.reply(t); !strings.Contains(r[1], "cannot check your group") {
		t.Fatalf("reply %q", r[1])
	}
}

func TestSlackRejectsUnsignedStaleAndReplayed(t *testing.T) {
	f := newSlackFixture(t)
	body := f.body("U0ALICE", slackapp.ActionApprove)
	cases := []struct {
		name   string
		send   func() *http.Response
		reason string
	}{
		{"forged", func() *http.Response { return f.post(t, body, "not-the-secret-0123456789abcdef", f.now) }, "signature"},
		{"stale", func() *http.Response { return f.post(t, body, slackSecret, f.now.Add(-6*time.Minute)) }, "stale"},
		{"unsigned", func() *http.Response {
			resp, err := http.Post(f.srv.URL+"/slack/interactions", "application/x-www-form-urlencoded", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}, "missing"},
		{"accepted", func() *http.Response { return f.post(t, body, slackSecret, f.now) }, ""},
		{"replayed", func() *http.Response { return f.post(t, body, slackSecret, f.now) }, "replayed"},
	}
	rejected := 0
	for _, c := range cases {
		resp := c.send()
		if c.reason == "" {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %s", c.name, resp.Status)
			}
			f.reply(t)
			continue
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401", c.name, resp.Status)
		}
		rejected++
		recs := f.sink.ofType(AuditSlackRejected)
		if len(recs) != rejected {
			t.Fatalf("%s: %d rejection records", c.name, len(recs))
		}
		last := string(recs[len(recs)-1].Data)
		if !strings.Contains(last, c.reason) || !strings.Contains(last, `"transport":"http"`) || strings.Contains(last, slackSecret) {
			t.Errorf("%s: recorded %s", c.name, last)
		}
	}
	if n := len(f.desk.seen()); n != 1 {
		t.Fatalf("%d votes reached the desk, want only the signed fresh one", n)
	}
}

func TestSlackRefusesWhatIsNotAClick(t *testing.T) {
	f := newSlackFixture(t, func(o *SlackOptions) { o.TeamID = "T0OTHER" })
	if resp := f.post(t, f.body("U0ALICE", slackapp.ActionApprove), slackSecret, f.now); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("click from another workspace: %s", resp.Status)
	}
	view := []byte(url.Values{"payload": {`{"type":"view_submission","user":{"id":"U0ALICE"}}`}}.Encode())
	if resp := f.post(t, view, slackSecret, f.now); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("view submission: %s", resp.Status)
	}
	// Socket Mode checks the workspace too.
	f.door.DispatchSocket(slackapp.Interaction{TeamID: "T0ACME", UserID: "U0ALICE", Verdict: "approve", ResponseURL: "https://hooks.slack.com/x",
		Button: slackapp.ButtonValue{Remediation: "reins-am-1", Run: deskRun, Step: 1, Digest: slackDigest}})
	if err := f.door.Shutdown(context.Background()); err != nil { // waits for any click dispatched
		t.Fatal(err)
	}
	if n := len(f.desk.seen()); n != 0 {
		t.Fatalf("%d votes reached the desk", n)
	}
	rejected := f.sink.ofType(AuditSlackRejected)
	if len(rejected) != 3 {
		t.Fatalf("%d rejections recorded, want 3", len(rejected))
	}
	var d SlackRejectedData
	if err := json.Unmarshal(rejected[2].Data, &d); err != nil || d.Transport != "socket" || !strings.Contains(d.Reason, `workspace "T0ACME"`) {
		t.Fatalf("socket rejection recorded as %+v (%v), want one naming the workspace", d, err)
	}
	// Without a verifier (Socket Mode only) the endpoint refuses everything.
	g := newSlackFixture(t, func(o *SlackOptions) { o.Verifier = nil })
	if resp := g.post(t, g.body("U0ALICE", slackapp.ActionApprove), slackSecret, g.now); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no verifier: %s", resp.Status)
	}
}

// The acknowledgement never waits for the desk; clicks beyond MaxInFlight
// get 503; Shutdown drains, then cancels what outlives its context.
func TestSlackAcknowledgesAtOnceAndDrains(t *testing.T) {
	f := newSlackFixture(t, func(o *SlackOptions) { o.MaxInFlight = 1 })
	f.desk.block = make(chan struct{})
	start := time.Now()
	if resp := f.post(t, f.body("U0ALICE", slackapp.ActionApprove), slackSecret, f.now); resp.StatusCode != http.StatusOK {
		t.Fatalf("first click: %s", resp.Status)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("acknowledged after %s while the desk was busy", d)
	}
	resp := f.post(t, f.body("U0ALICE", slackapp.ActionDeny), slackSecret, f.now)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("click beyond MaxInFlight: %s", resp.Status)
	}
	// Socket Mode's dispatch answers instead.
	f.door.DispatchSocket(slackapp.Interaction{UserID: "U0ALICE", Verdict: "approve", ResponseURL: "https://hooks.slack.com/x",
		Button: slackapp.ButtonValue{Remediation: "reins-am-1", Run: deskRun, Step: 1, Digest: slackDigest}})
	if r := f.reply(t); !strings.Contains(r[1], "busy") {
		t.Fatalf("socket click beyond MaxInFlight: %q", r[1])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := f.door.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with a click stuck: %v", err)
	}
	f.desk.mu.Lock()
	ctxErr := f.desk.ctxErr
	f.desk.mu.Unlock()
	if !errors.Is(ctxErr, context.Canceled) {
		t.Fatalf("the stuck click was not cancelled: %v", ctxErr)
	}
	f.reply(t) // the cancelled click is still answered
	if f.door.Dispatch(slackapp.Interaction{}) {
		t.Fatal("a click was taken after shutdown")
	}
}

func TestSlackAuditFloodIsBounded(t *testing.T) {
	f := newSlackFixture(t)
	body := f.body("U0ALICE", slackapp.ActionApprove)
	for range 60 {
		if resp := f.post(t, body, "forged-secret-0123456789abcdef00", f.now); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged: %s", resp.Status)
		}
	}
	recs := f.sink.ofType(AuditSlackRejected)
	if len(recs) < 20 || len(recs) >= 60 {
		t.Fatalf("%d records for 60 forged requests: want the burst, then a bounded rate", len(recs))
	}
	time.Sleep(250 * time.Millisecond) // one token refills at 5/s
	f.post(t, body, "forged-secret-0123456789abcdef00", f.now)
	recs = f.sink.ofType(AuditSlackRejected)
	var d SlackRejectedData
	if err := json.Unmarshal(recs[len(recs)-1].Data, &d); err != nil || d.Suppressed == 0 {
		t.Fatalf("the record after a flood does not count what was left out: %+v %v", d, err)
	}
}

func TestNewSlackNamesWhatIsMissing(t *testing.T) {
	_, err := NewSlack(SlackOptions{})
	for _, want := range []string{"directory", "desk", "responder", "recorder"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name the %s", err, want)
		}
	}
}
