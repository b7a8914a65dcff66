//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/slackapp"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// The Slack approval door end to end: a worker posting co-signature
// requests to slack-go's slacktest server (Slack's Web API), the gateway's
// /slack/interactions receiving clicks signed exactly as Slack signs them,
// the desk signalling the workflow on the dev Temporal server, and the
// message kept current with chat.update.

const slackSigningSecret = "3f1c8a07d2b94e65a1c0ffee12345678"

// The workspace: who is who, and the user groups.
var (
	slackUsers = map[string]map[string]any{
		"U0ALICE":   {"id": "U0ALICE", "name": "alice", "real_name": "Alice Liddell", "profile": map[string]any{"email": "alice@example.com"}},
		"U0BOB":     {"id": "U0BOB", "name": "bob", "real_name": "Bob Moran", "profile": map[string]any{"email": "bob@example.com"}},
		"U0DANA":    {"id": "U0DANA", "name": "dana", "real_name": "Dana Scully", "profile": map[string]any{"email": "dana@example.com"}},
		"U0ERIN":    {"id": "U0ERIN", "name": "erin", "real_name": "Erin Hunt", "profile": map[string]any{"email": "erin@example.com"}},
		"U0MALLORY": {"id": "U0MALLORY", "name": "mallory", "real_name": "Mallory", "profile": map[string]any{"email": "mallory@example.com"}},
	}
	slackUsergroups = map[string][]string{
		"S0SRE":   {"U0ALICE", "U0BOB", "U0DANA"},
		"S0LEADS": {"U0ERIN"},
	}
)

// slackMessage is a chat.postMessage or chat.update Slack received.
type slackMessage struct {
	Channel, TS, Text string
	Blocks            []slack.Block
	Metadata          slack.SlackMetadata
}

// text is every text of the message's blocks.
func (m slackMessage) text() string {
	var b strings.Builder
	for _, blk := range m.Blocks {
		switch x := blk.(type) {
		case *slack.HeaderBlock:
			b.WriteString(x.Text.Text + "\n")
		case *slack.SectionBlock:
			if x.Text != nil {
				b.WriteString(x.Text.Text + "\n")
			}
			for _, f := range x.Fields {
				b.WriteString(f.Text + "\n")
			}
		case *slack.ContextBlock:
			for _, e := range x.ContextElements.Elements {
				if t, ok := e.(*slack.TextBlockObject); ok {
					b.WriteString(t.Text + "\n")
				}
			}
		}
	}
	return b.String()
}

// button returns the value of the message's button actionID ("" when none).
func (m slackMessage) button(actionID string) string {
	for _, blk := range m.Blocks {
		if a, ok := blk.(*slack.ActionBlock); ok {
			for _, e := range a.Elements.ElementSet {
				if b, ok := e.(*slack.ButtonBlockElement); ok && b.ActionID == actionID {
					return b.Value
				}
			}
		}
	}
	return ""
}

// fakeSlack is slacktest's server with the Web API methods reins calls.
type fakeSlack struct {
	srv *slacktest.Server

	mu      sync.Mutex
	seq     int
	posts   []slackMessage
	updates []slackMessage
	// loseAnswer: the next post to this channel is stored, as Slack would
	// store it, but answered with a 503, as when the answer is lost.
	loseAnswer string
}

func startFakeSlack(t testing.TB) *fakeSlack {
	t.Helper()
	f := &fakeSlack{}
	form := func(r *http.Request) url.Values {
		_ = r.ParseForm()
		return r.PostForm
	}
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	message := func(v url.Values) slackMessage {
		var blocks slack.Blocks
		if err := json.Unmarshal([]byte(v.Get("blocks")), &blocks); err != nil {
			t.Errorf("blocks Slack would refuse: %v", err)
		}
		m := slackMessage{Channel: v.Get("channel"), TS: v.Get("ts"), Text: v.Get("text"), Blocks: blocks.BlockSet}
		if meta := v.Get("metadata"); meta != "" {
			if err := json.Unmarshal([]byte(meta), &m.Metadata); err != nil {
				t.Errorf("metadata Slack would refuse: %v", err)
			}
		}
		return m
	}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			m := message(form(r))
			f.mu.Lock()
			f.seq++
			m.TS = fmt.Sprintf("%d.%06d", time.Now().Unix(), f.seq)
			f.posts = append(f.posts, m)
			lose := f.loseAnswer != "" && m.Channel == f.loseAnswer
			if lose {
				f.loseAnswer = ""
			}
			f.mu.Unlock()
			if lose {
				http.Error(w, "upstream timeout", http.StatusServiceUnavailable)
				return
			}
			reply(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
		})
		// The channel's messages since oldest, newest first, as Slack
		// answers conversations.history (one page).
		c.Handle("/conversations.history", func(w http.ResponseWriter, r *http.Request) {
			v := form(r)
			oldest, _ := strconv.ParseFloat(v.Get("oldest"), 64)
			var msgs []map[string]any
			f.mu.Lock()
			for i := len(f.posts) - 1; i >= 0; i-- {
				m := f.posts[i]
				if ts, _ := strconv.ParseFloat(m.TS, 64); m.Channel != v.Get("channel") || ts < oldest {
					continue
				}
				msg := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
				if v.Get("include_all_metadata") == "1" && m.Metadata.EventType != "" {
					msg["metadata"] = m.Metadata
				}
				msgs = append(msgs, msg)
			}
			f.mu.Unlock()
			reply(w, map[string]any{"ok": true, "messages": msgs})
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			m := message(form(r))
			f.mu.Lock()
			f.updates = append(f.updates, m)
			f.mu.Unlock()
			reply(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
		})
		c.Handle("/users.info", func(w http.ResponseWriter, r *http.Request) {
			u, ok := slackUsers[form(r).Get("user")]
			if !ok {
				reply(w, map[string]any{"ok": false, "error": "user_not_found"})
				return
			}
			reply(w, map[string]any{"ok": true, "user": u})
		})
		c.Handle("/usergroups.users.list", func(w http.ResponseWriter, r *http.Request) {
			members, ok := slackUsergroups[form(r).Get("usergroup")]
			if !ok {
				reply(w, map[string]any{"ok": false, "error": "no_such_subteam"})
				return
			}
			reply(w, map[string]any{"ok": true, "users": members})
		})
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

// request waits for the co-signature request of remediation id posted to
// channel.
func (f *fakeSlack) request(t testing.TB, id, channel string) slackMessage {
	t.Helper()
	var got slackMessage
	waitFor(t, "co-signature request of "+id+" in "+channel, func() (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, m := range f.posts {
			v, err := slackapp.ParseButtonValue(m.button(slackapp.ActionApprove))
			if err == nil && v.Remediation == id && m.Channel == channel {
				got = m
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

// updated waits for an update of message m that satisfies cond, and returns it.
func (f *fakeSlack) updated(t *testing.T, m slackMessage, what string, cond func(slackMessage) bool) slackMessage {
	t.Helper()
	var got slackMessage
	waitFor(t, what, func() (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, u := range f.updates {
			if u.Channel == m.Channel && u.TS == m.TS && cond(u) {
				got = u
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

// hooks stands in for Slack's response_url endpoint: the ephemeral replies.
type hooks struct {
	srv *httptest.Server

	mu      sync.Mutex
	replies map[string][]map[string]any
}

func startHooks(t testing.TB) *hooks {
	t.Helper()
	h := &hooks{replies: map[string][]map[string]any{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("reply %s: %v", b, err)
		}
		h.mu.Lock()
		h.replies[r.URL.Path] = append(h.replies[r.URL.Path], body)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// reply waits for the ephemeral reply to the click answered at path.
func (h *hooks) reply(t *testing.T, path string) string {
	t.Helper()
	var text string
	waitFor(t, "ephemeral reply at "+path, func() (bool, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		rs := h.replies[path]
		if len(rs) == 0 {
			return false, nil
		}
		if rs[0]["response_type"] != "ephemeral" || rs[0]["replace_original"] != false {
			return false, fmt.Errorf("reply %v is not ephemeral", rs[0])
		}
		text, _ = rs[0]["text"].(string)
		return true, nil
	})
	return text
}

// slackDoor is a worker posting to the fake Slack and a gateway serving
// /slack/interactions, built from the same slack config section.
type slackDoor struct {
	w     worker
	slack *fakeSlack
	hooks *hooks
	url   string
	audit *slackAudit
	seq   int
}

func startSlackDoor(t testing.TB) *slackDoor {
	t.Helper()
	return startSlackDoorWith(t, func(dir string, slack workers.SlackConfig) worker {
		return startWorker(t, dir, func(c *workers.Config) { c.Slack = slack })
	})
}

// startSlackDoorWith is startSlackDoor with the worker that start runs on
// the test bundle in dir and the fake Slack's config section.
func startSlackDoorWith(t testing.TB, start func(dir string, slack workers.SlackConfig) worker) *slackDoor {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("policy.rego", approvalsPolicy)
	fs, hk := startFakeSlack(t), startHooks(t)
	slackCfg := workers.SlackConfig{
		BotTokenFile:        write("bot-token", "xoxb-integration"),
		SigningSecretFile:   write("signing-secret", slackSigningSecret),
		APIURL:              fs.srv.GetAPIURL(),
		DefaultChannel:      "C0ONCALL",
		Groups:              map[string]workers.SlackGroupConfig{"oncall-sre": {Usergroup: "S0SRE", Channel: "C0SRE"}, "sre-leads": {Usergroup: "S0LEADS", Channel: "C0LEADS"}},
		TeamID:              "T0ACME",
		ResponseURLPrefixes: []string{hk.srv.URL + "/hooks/"},
	}
	w := start(dir, slackCfg)

	audit := &slackAudit{}
	rec, err := gateway.NewRecorder([]gateway.AuditSink{audit}, stack.temporal.Namespace, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	desk, err := gateway.NewDesk(gateway.DeskOptions{
		Remediations: gateway.TemporalDeskRemediations(stack.client),
		Signer:       gateway.Signer{KeyID: "it", Key: w.signer},
		Recorder:     rec,
		Logger:       stack.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	door, runner, err := w.cfg.SlackDoor(desk, rec, stack.logger)
	if err != nil || runner != nil {
		t.Fatalf("slack door: %v (socket runner %v)", err, runner)
	}
	srv := newTestGateway(t)
	srv.Handle(gateway.SlackInteractionsPattern, door)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := door.Shutdown(ctx); err != nil {
			t.Errorf("slack door shutdown: %v", err)
		}
	})
	return &slackDoor{w: w, slack: fs, hooks: hk, url: hs.URL + "/slack/interactions", audit: audit}
}

// clickBody is the form Slack posts when user clicks action on a message
// whose button carries value, answered at path on the hooks server.
func (d *slackDoor) clickBody(user, action, value string) (body []byte, path string) {
	d.seq++
	path = fmt.Sprintf("/hooks/T0ACME/%d/%s", d.seq, strings.ToLower(user))
	payload := map[string]any{
		"type":         "block_actions",
		"token":        "legacy-verification-token",
		"api_app_id":   "A0REINS",
		"trigger_id":   fmt.Sprintf("%d.1.abc", d.seq),
		"user":         map[string]any{"id": user, "username": strings.ToLower(strings.TrimPrefix(user, "U0")), "team_id": "T0ACME"},
		"team":         map[string]any{"id": "T0ACME", "domain": "acme"},
		"container":    map[string]any{"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0SRE", "is_ephemeral": false},
		"channel":      map[string]any{"id": "C0SRE", "name": "oncall-sre"},
		"response_url": d.hooks.srv.URL + path,
		"actions": []any{map[string]any{
			"type": "button", "action_id": action, "block_id": slackapp.BlockDecide, "value": value,
			"action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), d.seq),
		}},
	}
	raw, _ := json.Marshal(payload)
	return []byte(url.Values{"payload": {string(raw)}}.Encode()), path
}

// send posts body signed with secret at signedAt as Slack does
// (X-Slack-Request-Timestamp, X-Slack-Signature: v0=HMAC-SHA256 of
// "v0:<timestamp>:<body>"), and returns the status and the headers sent.
func (d *slackDoor) send(t testing.TB, body []byte, secret string, signedAt time.Time) (int, http.Header) {
	t.Helper()
	ts := strconv.FormatInt(signedAt.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", slackapp.SignatureHeader([]byte(secret), ts, body))
	return d.sendHeaders(t, body, h), h
}

func (d *slackDoor) sendHeaders(t testing.TB, body []byte, h http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the gateway answered Slack after %s: Slack gives up after 3s", d)
	}
	return resp.StatusCode
}

// click is user clicking action on message m, signed now; it returns the
// ephemeral reply's path.
func (d *slackDoor) click(t testing.TB, user, action string, m slackMessage) string {
	t.Helper()
	body, path := d.clickBody(user, action, m.button(action))
	if status, _ := d.send(t, body, slackSigningSecret, time.Now()); status != http.StatusOK {
		t.Fatalf("%s's click on %s: %d", user, action, status)
	}
	return path
}

// wantWriteFirst checks that the workflow task that scheduled id's write
// (after the counted approval) scheduled nothing before it: the audit
// record and the message update the approval caused come after.
func wantWriteFirst(t *testing.T, id string) {
	t.Helper()
	var sinceTask []string
	for _, ev := range fetchHistory(t, id).Events {
		switch {
		case ev.GetWorkflowTaskCompletedEventAttributes() != nil:
			sinceTask = nil
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			if name == remediation.ActivityExecute {
				if len(sinceTask) > 0 {
					t.Errorf("the write was scheduled after %v in its workflow task", sinceTask)
				}
				return
			}
			sinceTask = append(sinceTask, name)
		}
	}
	t.Errorf("remediation %s scheduled no write", id)
}

// slackSignals counts the approval signals in id's history.
func slackSignals(t *testing.T, id string) int {
	t.Helper()
	n := 0
	for _, ev := range fetchHistory(t, id).Events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED &&
			ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == workflows.SignalApproval {
			n++
		}
	}
	return n
}

// counted waits until step i of id has n counted approvals.
func counted(t *testing.T, id string, i, n int) workflows.Status {
	t.Helper()
	var st workflows.Status
	waitFor(t, fmt.Sprintf("%d counted approval(s) of step %d", n, i), func() (bool, error) {
		var err error
		st, err = workflows.GetStatus(context.Background(), stack.client, id)
		if err != nil {
			return false, err
		}
		c := 0
		for _, a := range st.Steps[i].Approvals {
			if a.Counted {
				c++
			}
		}
		return c == n, nil
	})
	return st
}

// decided reports whether an update has no buttons and its outcome contains s.
func decided(s string) func(slackMessage) bool {
	return func(m slackMessage) bool {
		return m.button(slackapp.ActionApprove) == "" && m.button(slackapp.ActionDeny) == "" && strings.Contains(m.text(), "*Outcome*: ") && strings.Contains(m.text(), s)
	}
}

// slackPlan scales name to 2 (allowed), then sets its image (co-signed).
func slackPlan(env, ns, name string) remediation.Plan {
	return plan(env,
		step(remediation.ActionScale, remediation.KindDeployment, ns, name, replicas(2)),
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, name, remediation.Params{Container: "app", Image: "registry.example/app:2"}))
}

func TestSlackApprovals(t *testing.T) {
	d := startSlackDoor(t)
	ns := namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	t.Run("approve runs the step", func(t *testing.T) {
		deployment(t, ns, "approve", 1, "registry.example/app:1")
		run, _ := d.w.startAwaiting(t, ctx, slackPlan("staging", ns, "approve"), 1)
		m := d.slack.request(t, run.GetID(), "C0SRE")
		text := m.text()
		for _, want := range []string{"Co-signature needed: step 2 of 2", "<!subteam^S0SRE>", "registry.example/app:1→registry.example/app:2",
			"/namespaces/" + stack.temporal.Namespace + "/workflows/" + run.GetID() + "|Open in Temporal UI>", "*Why this step*", "*Agent's reasoning*",
			"the approvals test bundle asks for 1 co-signer(s)", "*Undo*: set image of " + ns + "/deployment/approve container app back to registry.example/app:1"} {
			if !strings.Contains(text, want) {
				t.Errorf("the request lacks %q:\n%s", want, text)
			}
		}
		if m.button(slackapp.ActionDeny) == "" {
			t.Fatal("the request has no Deny button")
		}
		path := d.click(t, "U0ALICE", slackapp.ActionApprove, m)
		if r := d.hooks.reply(t, path); !strings.Contains(r, "sent as alice@example.com") {
			t.Errorf("alice was told %q", r)
		}
		wantCompleted(t, ctx, run)
		wantWriteFirst(t, run.GetID())
		if img := getDeployment(t, ns, "approve").Spec.Template.Spec.Containers[0].Image; img != "registry.example/app:2" {
			t.Fatalf("image %s after approval", img)
		}
		u := d.slack.updated(t, m, "the message showing the step done", decided("done"))
		if !strings.Contains(u.text(), ":white_check_mark: *Alice Liddell (alice@example.com)* approved") {
			t.Errorf("the final message does not show who approved:\n%s", u.text())
		}
	})

	t.Run("a post whose answer was lost is not posted twice", func(t *testing.T) {
		deployment(t, ns, "lost", 1, "registry.example/app:1")
		d.slack.mu.Lock()
		d.slack.loseAnswer = "C0SRE"
		d.slack.mu.Unlock()
		run, _ := d.w.startAwaiting(t, ctx, slackPlan("staging", ns, "lost"), 1)
		id := run.GetID()
		m := d.slack.request(t, id, "C0SRE")
		// The first attempt's answer was lost; the retry, after its 1 s
		// backoff, finds that message and keeps it: the updates go to it.
		d.click(t, "U0ALICE", slackapp.ActionApprove, m)
		wantCompleted(t, ctx, run)
		d.slack.updated(t, m, "the one message showing the step done", decided("done"))
		d.slack.mu.Lock()
		defer d.slack.mu.Unlock()
		n := 0
		for _, p := range d.slack.posts {
			if p.Metadata.EventPayload["remediation"] == id {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the request was posted %d times, want once", n)
		}
	})

	t.Run("deny compensates", func(t *testing.T) {
		deployment(t, ns, "deny", 1, "registry.example/app:1")
		run, _ := d.w.startAwaiting(t, ctx, slackPlan("staging", ns, "deny"), 1)
		m := d.slack.request(t, run.GetID(), "C0SRE")
		d.click(t, "U0BOB", slackapp.ActionDeny, m)
		st, err := workflows.Result(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, st, remediation.StateDenied)
		dep := getDeployment(t, ns, "deny")
		if *dep.Spec.Replicas != 1 || dep.Spec.Template.Spec.Containers[0].Image != "registry.example/app:1" {
			t.Fatalf("after the deny: %d replicas, image %s; want step 0 undone (1) and step 1 never run", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
		}
		d.slack.updated(t, m, "the message showing the deny", decided("denied by bob@example.com"))
	})

	t.Run("quorum of two needs two people", func(t *testing.T) {
		deployment(t, ns, "quorum", 1, "registry.example/app:1")
		run, _ := d.w.startAwaiting(t, ctx, slackPlan("quorum-two", ns, "quorum"), 1)
		id := run.GetID()
		m := d.slack.request(t, id, "C0SRE")
		d.click(t, "U0ALICE", slackapp.ActionApprove, m)
		counted(t, id, 1, 1)
		// The message shows the first approval and keeps its buttons.
		d.slack.updated(t, m, "the message showing 1 of 2", func(u slackMessage) bool {
			return strings.Contains(u.text(), "1 of 2") && strings.Contains(u.text(), "alice@example.com") && u.button(slackapp.ActionApprove) != ""
		})
		path := d.click(t, "U0ALICE", slackapp.ActionApprove, m)
		if r := d.hooks.reply(t, path); !strings.Contains(r, "already counted") {
			t.Errorf("alice's second click was answered %q", r)
		}
		st := counted(t, id, 1, 1)
		if st.Steps[1].State != remediation.StepAwaitingApproval || slackSignals(t, id) != 1 {
			t.Fatalf("after the same approver twice: step %s, %d signals", st.Steps[1].State, slackSignals(t, id))
		}
		d.click(t, "U0BOB", slackapp.ActionApprove, m)
		wantCompleted(t, ctx, run)
		d.slack.updated(t, m, "the message showing both approvals", decided("approved by"))
	})

	t.Run("refused and rejected clicks send nothing", func(t *testing.T) {
		deployment(t, ns, "refused", 1, "registry.example/app:1")
		p := slackPlan("quorum-two", ns, "refused")
		p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "dana@example.com"}
		run, _ := d.w.startAwaiting(t, ctx, p, 1)
		id := run.GetID()
		defer func() { _ = stack.client.TerminateWorkflow(context.Background(), id, "", "test done") }()
		m := d.slack.request(t, id, "C0SRE")

		path := d.click(t, "U0DANA", slackapp.ActionApprove, m)
		if r := d.hooks.reply(t, path); !strings.Contains(r, "dana@example.com requested remediation") {
			t.Errorf("the requester was answered %q", r)
		}
		path = d.click(t, "U0MALLORY", slackapp.ActionApprove, m)
		if r := d.hooks.reply(t, path); !strings.Contains(r, "mallory@example.com is not in group") {
			t.Errorf("mallory was answered %q", r)
		}
		// A button bound to another step's digest (signed by Slack all the same).
		other, err := slackapp.ButtonValue{Remediation: id, Run: run.GetRunID(), Step: 1, Digest: p.StepDigest(0)}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		body, path := d.clickBody("U0ALICE", slackapp.ActionApprove, other)
		if status, _ := d.send(t, body, slackSigningSecret, time.Now()); status != http.StatusOK {
			t.Fatalf("signed click with another digest: %d", status)
		}
		if r := d.hooks.reply(t, path); !strings.Contains(r, "not the version you were shown") {
			t.Errorf("the click with another step's digest was answered %q", r)
		}
		// A button of an earlier run's message (same plan, same digest).
		earlier, err := slackapp.ButtonValue{Remediation: id, Run: "01a21618-0000-7000-8000-000000000000", Step: 1, Digest: p.StepDigest(1)}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		body, path = d.clickBody("U0ALICE", slackapp.ActionApprove, earlier)
		if status, _ := d.send(t, body, slackSigningSecret, time.Now()); status != http.StatusOK {
			t.Fatalf("signed click on an earlier run's message: %d", status)
		}
		if r := d.hooks.reply(t, path); !strings.Contains(r, "from an earlier run of remediation") {
			t.Errorf("the click on an earlier run's message was answered %q", r)
		}

		before := len(d.audit.slackRejected(t))
		body, _ = d.clickBody("U0ALICE", slackapp.ActionApprove, m.button(slackapp.ActionApprove))
		if status, _ := d.send(t, body, "forged-secret-0123456789abcdef", time.Now()); status != http.StatusUnauthorized {
			t.Errorf("forged signature: %d", status)
		}
		if status, _ := d.send(t, body, slackSigningSecret, time.Now().Add(-6*time.Minute)); status != http.StatusUnauthorized {
			t.Errorf("stale timestamp: %d", status)
		}
		if n := slackSignals(t, id); n != 0 {
			t.Fatalf("%d approval signals after refused and forged clicks", n)
		}
		// The genuine click counts once; its replay is refused.
		status, headers := d.send(t, body, slackSigningSecret, time.Now())
		if status != http.StatusOK {
			t.Fatalf("genuine click: %d", status)
		}
		counted(t, id, 1, 1)
		if status := d.sendHeaders(t, body, headers); status != http.StatusUnauthorized {
			t.Errorf("replayed request: %d", status)
		}
		if n := slackSignals(t, id); n != 1 {
			t.Fatalf("%d approval signals, want the genuine click's only", n)
		}
		rejected := d.audit.slackRejected(t)[before:]
		var reasons []string
		for _, r := range rejected {
			reasons = append(reasons, r.Reason)
			if strings.Contains(r.Reason, slackSigningSecret) {
				t.Errorf("a rejection record shows the signing secret: %s", r.Reason)
			}
		}
		all := strings.Join(reasons, "\n")
		for _, want := range []string{"bad Slack request signature", "stale Slack request timestamp", "replayed Slack request"} {
			if !strings.Contains(all, want) {
				t.Errorf("no rejection recorded with %q; recorded:\n%s", want, all)
			}
		}
	})

	t.Run("escalation then timeout denies and compensates", func(t *testing.T) {
		deployment(t, ns, "expire", 1, "registry.example/app:1")
		run, _ := d.w.startAwaiting(t, ctx, slackPlan("escalate-expire", ns, "expire"), 1)
		first := d.slack.request(t, run.GetID(), "C0SRE")
		esc := d.slack.request(t, run.GetID(), "C0LEADS")
		if text := esc.text(); !strings.Contains(text, "Escalated") || !strings.Contains(text, "<!subteam^S0LEADS>") {
			t.Errorf("the escalation lacks the escalation group:\n%s", text)
		}
		st, err := workflows.Result(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, st, remediation.StateDenied)
		if dep := getDeployment(t, ns, "expire"); *dep.Spec.Replicas != 1 {
			t.Fatalf("%d replicas after the timeout; step 0 was not undone", *dep.Spec.Replicas)
		}
		for _, m := range []slackMessage{first, esc} {
			d.slack.updated(t, m, "message "+m.Channel+" showing the expiry", decided("expired"))
		}
	})
}

// slackAudit reads the Slack door's records.
type slackAudit struct{ gatewayAudit }

// slackRejected returns the gateway's AuditSlackRejected records.
func (s *slackAudit) slackRejected(t *testing.T) []gateway.SlackRejectedData {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []gateway.SlackRejectedData
	for _, rec := range s.recs {
		if rec.Type != gateway.AuditSlackRejected {
			continue
		}
		var d gateway.SlackRejectedData
		if err := json.Unmarshal(rec.Data, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}
