package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/reins-dev/reins/remediation"
)

// fakeSlack is slacktest's server with the methods reins calls recorded.
type fakeSlack struct {
	srv *slacktest.Server
	api *slack.Client

	mu    sync.Mutex
	calls map[string][]url.Values
}

// newFakeSlack serves handlers (method → handler) beside slacktest's own;
// every call to one of them is recorded.
func newFakeSlack(t *testing.T, handlers map[string]func(w http.ResponseWriter, form url.Values)) *fakeSlack {
	t.Helper()
	f := &fakeSlack{calls: map[string][]url.Values{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		for method, h := range handlers {
			c.Handle("/"+method, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				form, _ := url.ParseQuery(string(body))
				f.mu.Lock()
				f.calls[method] = append(f.calls[method], form)
				f.mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				h(w, form)
			})
		}
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	f.api = slack.New("xoxb-test", slack.OptionAPIURL(f.srv.GetAPIURL()))
	return f
}

func (f *fakeSlack) called(method string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.calls[method]...)
}

func writeJSON(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }

func okPost(w http.ResponseWriter, form url.Values) {
	writeJSON(w, map[string]any{"ok": true, "channel": form.Get("channel"), "ts": "1700000000.000100"})
}

func TestNotifierPostsToTheGroupsChannel(t *testing.T) {
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){"chat.postMessage": okPost})
	n, err := NewNotifier(f.api, NotifierOptions{
		Groups:         map[string]Group{"sre": {Usergroup: "S0SRE", Channel: "C0SRE"}, "leads": {Usergroup: "S0LEADS"}},
		DefaultChannel: "C0ALL",
	})
	if err != nil {
		t.Fatal(err)
	}
	req := testRequest()
	posted, err := n.Post(context.Background(), req, PostOptions{WorkflowURL: "http://ui/namespaces/default/workflows/reins-am-1", Key: "run-1/12"})
	if err != nil {
		t.Fatal(err)
	}
	if posted != (Posted{Message: remediation.ApprovalMessage{Channel: "C0SRE", TS: "1700000000.000100"}}) {
		t.Fatalf("posted %+v", posted)
	}
	req.Group, req.Escalated = "leads", true
	if posted, err = n.Post(context.Background(), req, PostOptions{}); err != nil || posted.Message.Channel != "C0ALL" {
		t.Fatalf("leads: %+v %v", posted, err)
	}
	calls := f.called("chat.postMessage")
	if len(calls) != 2 || calls[0].Get("channel") != "C0SRE" || calls[1].Get("channel") != "C0ALL" {
		t.Fatalf("calls %v", calls)
	}
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(calls[0].Get("blocks")), &blocks); err != nil {
		t.Fatal(err)
	}
	all, buttons := texts(t, blocks.BlockSet)
	if len(buttons) != 2 || !containsAll(all, "<!subteam^S0SRE>", "Open in Temporal UI") {
		t.Fatalf("posted blocks:\n%s", all)
	}
	if calls[0].Get("unfurl_links") != "false" {
		t.Errorf("links unfurl: %v", calls[0])
	}
	var meta slack.SlackMetadata
	if err := json.Unmarshal([]byte(calls[0].Get("metadata")), &meta); err != nil || meta.EventType != MetadataEventType ||
		meta.EventPayload["key"] != "run-1/12" || meta.EventPayload["remediation"] != req.Remediation {
		t.Errorf("metadata %q (%v), want the key, remediation and step", calls[0].Get("metadata"), err)
	}
	if calls[1].Has("metadata") {
		t.Errorf("a post without a key carries metadata %q", calls[1].Get("metadata"))
	}
	all, _ = texts(t, mustBlocks(t, calls[1].Get("blocks")))
	if !containsAll(all, "<!subteam^S0LEADS>", "Escalated") {
		t.Fatalf("escalated blocks:\n%s", all)
	}

	// No channel for a group and no default: a configuration error that
	// retrying cannot fix.
	n, _ = NewNotifier(f.api, NotifierOptions{})
	_, err = n.Post(context.Background(), testRequest(), PostOptions{})
	if code, ok := Permanent(err); !errors.Is(err, ErrNoChannel) || !ok || code != "no_channel" {
		t.Fatalf("no channel: %v (%s %v)", err, code, ok)
	}
}

func mustBlocks(t *testing.T, s string) []slack.Block {
	t.Helper()
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(s), &blocks); err != nil {
		t.Fatal(err)
	}
	return blocks.BlockSet
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestNotifierWaitsOutRateLimits(t *testing.T) {
	var n429 atomic.Int32
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){
		"chat.postMessage": func(w http.ResponseWriter, form url.Values) {
			if n429.Add(1) <= 2 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			okPost(w, form)
		},
		"chat.update": func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		},
	})
	n, _ := NewNotifier(f.api, NotifierOptions{DefaultChannel: "C0ALL"})
	start := time.Now()
	posted, err := n.Post(context.Background(), testRequest(), PostOptions{})
	if err != nil || posted.Message.Channel != "C0ALL" {
		t.Fatalf("post after two 429s: %+v %v", posted, err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("retried after %s, before Retry-After", d)
	}
	if got := len(f.called("chat.postMessage")); got != 3 {
		t.Fatalf("%d calls, want 3", got)
	}
	// The wait never outlives the context.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = n.Update(ctx, remediation.UpdateApprovalInput{Request: testRequest(), Messages: []remediation.ApprovalMessage{{Channel: "C0ALL", TS: "1.2"}}}, "")
	if _, limited := rateLimited(err); !limited || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("update under a 30s rate limit: %v after %s", err, time.Since(start))
	}
	if _, ok := Permanent(err); ok {
		t.Fatal("a rate limit is permanent")
	}
}

func TestNotifierUpdatesEveryMessage(t *testing.T) {
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){
		"chat.update": func(w http.ResponseWriter, form url.Values) {
			if form.Get("channel") == "C0GONE" {
				writeJSON(w, map[string]any{"ok": false, "error": "channel_not_found"})
				return
			}
			writeJSON(w, map[string]any{"ok": true, "channel": form.Get("channel"), "ts": form.Get("ts")})
		},
	})
	n, _ := NewNotifier(f.api, NotifierOptions{DefaultChannel: "C0ALL", Groups: map[string]Group{"sre": {Usergroup: "S0SRE"}}})
	in := remediation.UpdateApprovalInput{
		Request:  testRequest(),
		Messages: []remediation.ApprovalMessage{{Channel: "C0GONE", TS: "1.1"}, {Channel: "C0SRE", TS: "1.2"}},
		Votes:    []remediation.ApprovalVote{{Approver: remediation.Approver{ID: "alice@example.com"}, Verdict: "deny", Counted: true}},
		Decided:  true,
		Outcome:  "denied by alice@example.com",
	}
	err := n.Update(context.Background(), in, "")
	if code, ok := Permanent(err); !ok || code != "channel_not_found" {
		t.Fatalf("update: %v (%s %v)", err, code, ok)
	}
	calls := f.called("chat.update")
	if len(calls) != 2 || calls[1].Get("channel") != "C0SRE" || calls[1].Get("ts") != "1.2" {
		t.Fatalf("one failed update stopped the others: %v", calls)
	}
	all, buttons := texts(t, mustBlocks(t, calls[1].Get("blocks")))
	if len(buttons) != 0 || !containsAll(all, "*Outcome*: denied by alice@example.com", ":no_entry:") {
		t.Fatalf("updated blocks (buttons %d):\n%s", len(buttons), all)
	}
}

func TestPermanent(t *testing.T) {
	for _, c := range []struct {
		err  error
		code string
		ok   bool
	}{
		{slack.SlackErrorResponse{Err: "not_in_channel"}, "not_in_channel", true},
		{errors.Join(errors.New("x"), slack.SlackErrorResponse{Err: "invalid_auth"}), "invalid_auth", true},
		{slack.SlackErrorResponse{Err: "internal_error"}, "", false},
		{&slack.RateLimitedError{RetryAfter: time.Second}, "", false},
		{slack.StatusCodeError{Code: 502}, "", false},
		{ErrBadButtonValue, "bad_button_value", true},
	} {
		if code, ok := Permanent(c.err); code != c.code || ok != c.ok {
			t.Errorf("Permanent(%v) = %q %v", c.err, code, ok)
		}
	}
}

// A retry finds the message an earlier attempt posted, by the key in its
// metadata, and does not post it again; when it cannot look, it posts.
func TestNotifierRetryFindsTheEarlierMessage(t *testing.T) {
	since := time.Unix(1700000000, 0)
	earlier := map[string]any{"type": "message", "ts": "1700000050.000200",
		"metadata": map[string]any{"event_type": MetadataEventType, "event_payload": map[string]any{"key": "run-1/12", "step": 2}}}
	other := map[string]any{"type": "message", "ts": "1700000040.000100",
		"metadata": map[string]any{"event_type": MetadataEventType, "event_payload": map[string]any{"key": "run-0/12"}}}
	plain := map[string]any{"type": "message", "ts": "1700000030.000100", "text": "lunch?"}
	for _, tc := range []struct {
		name      string
		history   func(w http.ResponseWriter, form url.Values)
		found     bool
		findErr   string
		pages     int
		wantPosts int
	}{
		{
			name: "found on the second page",
			history: func(w http.ResponseWriter, form url.Values) {
				if form.Get("cursor") == "" {
					writeJSON(w, map[string]any{"ok": true, "has_more": true, "messages": []any{plain, other}, "response_metadata": map[string]any{"next_cursor": "page2"}})
					return
				}
				writeJSON(w, map[string]any{"ok": true, "messages": []any{earlier}})
			},
			found: true, pages: 2, wantPosts: 0,
		},
		{
			name: "not posted before",
			history: func(w http.ResponseWriter, _ url.Values) {
				writeJSON(w, map[string]any{"ok": true, "messages": []any{other, plain}})
			},
			pages: 1, wantPosts: 1,
		},
		{
			name: "history too long to read whole",
			history: func(w http.ResponseWriter, _ url.Values) {
				writeJSON(w, map[string]any{"ok": true, "has_more": true, "messages": []any{plain}, "response_metadata": map[string]any{"next_cursor": "more"}})
			},
			pages: findPages, wantPosts: 1,
		},
		{
			name: "no history scope",
			history: func(w http.ResponseWriter, _ url.Values) {
				writeJSON(w, map[string]any{"ok": false, "error": "missing_scope"})
			},
			findErr: "conversations.history of C0SRE: missing_scope", pages: 1, wantPosts: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){"chat.postMessage": okPost, "conversations.history": tc.history})
			n, _ := NewNotifier(f.api, NotifierOptions{Groups: map[string]Group{"sre": {Usergroup: "S0SRE", Channel: "C0SRE"}}})
			posted, err := n.Post(context.Background(), testRequest(), PostOptions{Key: "run-1/12", FindSince: since})
			if err != nil {
				t.Fatal(err)
			}
			if posted.Found != tc.found || (tc.found && posted.Message != (remediation.ApprovalMessage{Channel: "C0SRE", TS: "1700000050.000200"})) {
				t.Errorf("posted %+v, want found %v", posted, tc.found)
			}
			if tc.findErr == "" && posted.FindErr != nil || tc.findErr != "" && (posted.FindErr == nil || !strings.Contains(posted.FindErr.Error(), tc.findErr)) {
				t.Errorf("find error %v, want %q", posted.FindErr, tc.findErr)
			}
			reads := f.called("conversations.history")
			if len(reads) != tc.pages {
				t.Fatalf("%d history pages read, want %d", len(reads), tc.pages)
			}
			if r := reads[0]; r.Get("channel") != "C0SRE" || r.Get("oldest") != "1700000000.000000" || r.Get("include_all_metadata") != "1" {
				t.Errorf("history read %v, want C0SRE since 1700000000 with metadata", r)
			}
			if got := len(f.called("chat.postMessage")); got != tc.wantPosts {
				t.Errorf("%d posts, want %d", got, tc.wantPosts)
			}
		})
	}

	// A first attempt (no FindSince) posts without reading the history.
	f := newFakeSlack(t, map[string]func(http.ResponseWriter, url.Values){"chat.postMessage": okPost, "conversations.history": okPost})
	n, _ := NewNotifier(f.api, NotifierOptions{DefaultChannel: "C0ALL"})
	if _, err := n.Post(context.Background(), testRequest(), PostOptions{Key: "run-1/12"}); err != nil {
		t.Fatal(err)
	}
	if len(f.called("conversations.history")) != 0 || len(f.called("chat.postMessage")) != 1 {
		t.Fatalf("first attempt: %d history reads, %d posts", len(f.called("conversations.history")), len(f.called("chat.postMessage")))
	}
}
