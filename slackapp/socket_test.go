package slackapp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
)

// fakeSocketSlack serves apps.connections.open and a Socket Mode WebSocket
// that sends hello, then envelopes, and collects the acknowledgements.
type fakeSocketSlack struct {
	srv       *httptest.Server
	envelopes []map[string]any
	acks      chan string
}

func newFakeSocketSlack(t *testing.T, envelopes ...map[string]any) *fakeSocketSlack {
	t.Helper()
	f := &fakeSocketSlack{envelopes: envelopes, acks: make(chan string, 16)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer xapp-test" {
			writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		writeJSON(w, map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/link"})
	})
	mux.HandleFunc("/link", func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		defer conn.Close()
		_ = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1})
		for _, e := range f.envelopes {
			if err := conn.WriteJSON(e); err != nil {
				return
			}
		}
		for {
			var ack struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if err := conn.ReadJSON(&ack); err != nil {
				return
			}
			f.acks <- ack.EnvelopeID
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func envelope(id, typ string, payload any) map[string]any {
	return map[string]any{"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": false}
}

func TestSocketRunner(t *testing.T) {
	viewSubmission := click(func(p map[string]any) { p["type"] = "view_submission" })
	f := newFakeSocketSlack(t,
		envelope("e1", "interactive", click()),
		envelope("e1", "interactive", click()), // redelivered
		envelope("e2", "interactive", viewSubmission),
		envelope("e3", "events_api", map[string]any{"type": "event_callback", "event": map[string]any{"type": "app_mention"}}),
		envelope("e4", "interactive", click(func(p map[string]any) { action(p)["action_id"] = ActionDeny })),
	)
	var mu sync.Mutex
	var got []Interaction
	var rejected []string
	dispatched := make(chan struct{}, 8)
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.srv.URL+"/"), slack.OptionAppLevelToken("xapp-test"))
	r, err := NewSocketRunner(api, SocketOptions{
		Dispatch: func(in Interaction) { mu.Lock(); got = append(got, in); mu.Unlock(); dispatched <- struct{}{} },
		Rejected: func(reason string) { mu.Lock(); rejected = append(rejected, reason); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	acked := map[string]int{}
	timeout := time.After(20 * time.Second)
	for len(acked) < 4 || acked["e1"] < 2 {
		select {
		case id := <-f.acks:
			acked[id]++
		case <-timeout:
			t.Fatalf("acknowledged %v, want e1 twice, e2, e3, e4", acked)
		}
	}
	for range 2 {
		select {
		case <-dispatched:
		case <-timeout:
			t.Fatal("clicks not dispatched")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Verdict != "approve" || got[1].Verdict != "deny" || got[0].UserID != "U012ABCDEF" || got[0].Button.Remediation != "reins-am-1" {
		t.Fatalf("dispatched %+v", got)
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0], "view_submission") {
		t.Fatalf("rejected %q", rejected)
	}
}

func TestSocketRunnerBadToken(t *testing.T) {
	f := newFakeSocketSlack(t)
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.srv.URL+"/"), slack.OptionAppLevelToken("xapp-wrong"))
	r, err := NewSocketRunner(api, SocketOptions{Dispatch: func(Interaction) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || !strings.Contains(err.Error(), "app_token") {
		t.Fatalf("Run with a refused token: %v", err)
	}
	if _, err := NewSocketRunner(api, SocketOptions{}); err == nil {
		t.Fatal("a runner without Dispatch")
	}
}
