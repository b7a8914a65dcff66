package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestResponderEphemeral(t *testing.T) {
	var got reply
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &got); err != nil || !strings.Contains(string(b), `"replace_original":false`) {
			t.Errorf("body %s: %v", b, err)
		}
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	r, err := NewResponder(ResponderOptions{URLPrefixes: []string{srv.URL + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Ephemeral(ctx, srv.URL+"/ok", "you are the requester <!channel>"); err != nil {
		t.Fatal(err)
	}
	if got.ResponseType != "ephemeral" || got.ReplaceOriginal || got.Text != "you are the requester &lt;!channel&gt;" {
		t.Fatalf("reply %+v", got)
	}
	if err := r.Ephemeral(ctx, srv.URL+"/fail", "x"); err == nil || strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("404: %v", err)
	}
	before := hits.Load()
	if err := r.Ephemeral(ctx, srv.URL+"/redirect", "x"); err == nil || hits.Load() != before+1 {
		t.Fatalf("redirect followed or accepted: %v (%d hits)", err, hits.Load()-before)
	}
	// Nothing but the allowed prefixes is answered.
	for _, u := range []string{"https://hooks.slack.com.evil.example/x", "http://169.254.169.254/latest", srv.URL + "x/ok"} {
		if err := r.Ephemeral(ctx, u, "x"); !errors.Is(err, ErrResponseURL) {
			t.Errorf("%s: %v", u, err)
		}
	}
	d, _ := NewResponder(ResponderOptions{})
	if err := d.Ephemeral(ctx, srv.URL+"/ok", "x"); !errors.Is(err, ErrResponseURL) {
		t.Errorf("default prefixes answered a non-Slack URL: %v", err)
	}
	// Closed server: the error does not carry the URL (a credential).
	srv.Close()
	if err := r.Ephemeral(ctx, srv.URL+"/ok/secret-path", "x"); err == nil || strings.Contains(err.Error(), "secret-path") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestResponderPrefixes(t *testing.T) {
	for _, p := range []string{"https://hooks.slack.com", "hooks.slack.com/", "ftp://x/", "https://user@hooks.slack.com/"} {
		if _, err := NewResponder(ResponderOptions{URLPrefixes: []string{p}}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}
