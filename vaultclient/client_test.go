package vaultclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeVault answers AppRole logins and one write path, and forgets every
// token when restarted, as a dev server does. (The integration tests run the
// real one: Vault stopped and started mid-remediation.)
type fakeVault struct {
	mu     sync.Mutex
	tokens map[string]bool
	logins int
	n      int
}

func (f *fakeVault) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]bool{}
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/auth/approle/login":
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["role_id"] != "role" || body["secret_id"] != "s3cret-id" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"errors":["invalid role or secret ID"]}`)
			return
		}
		f.logins++
		f.n++
		tok := fmt.Sprintf("hvs.token-%d", f.n)
		f.tokens[tok] = true
		fmt.Fprintf(w, `{"auth":{"client_token":%q,"lease_duration":3600,"renewable":true}}`, tok)
	case "/v1/kubernetes/creds/reins-staging":
		if !f.tokens[r.Header.Get("X-Vault-Token")] {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["permission denied"]}`)
			return
		}
		fmt.Fprint(w, `{"lease_id":"kubernetes/creds/reins-staging/abc","data":{"service_account_token":"x"}}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[]}`)
	}
}

func secretFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppRoleLoginAndReloginAfterRestart(t *testing.T) {
	f := &fakeVault{tokens: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(Options{Addr: srv.URL, Method: MethodAppRole, RoleID: "role", SecretIDFile: secretFile(t, "s3cret-id"), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := c.Write(ctx, "kubernetes/creds/reins-staging", nil); err != nil {
			t.Fatal(err)
		}
	}
	if f.logins != 1 {
		t.Errorf("%d logins for 3 requests, want 1", f.logins)
	}
	f.restart() // every token is gone
	if _, err := c.Write(ctx, "kubernetes/creds/reins-staging", nil); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if f.logins != 2 {
		t.Errorf("%d logins, want 2 (one again after the restart)", f.logins)
	}
}

func TestLoginFailuresAndErrors(t *testing.T) {
	f := &fakeVault{tokens: map[string]bool{}}
	srv := httptest.NewServer(f)
	c, err := New(Options{Addr: srv.URL, Method: MethodAppRole, RoleID: "role", SecretIDFile: secretFile(t, "wrong-secret-id"), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Write(context.Background(), "kubernetes/creds/reins-staging", nil)
	if StatusCode(err) != http.StatusBadRequest || Retryable(err) {
		t.Errorf("bad secret id: %v (status %d, retryable %t), want a final 400", err, StatusCode(err), Retryable(err))
	}
	if strings.Contains(err.Error(), "wrong-secret-id") {
		t.Errorf("the error shows the secret id: %v", err)
	}
	srv.Close()
	_, err = c.Write(context.Background(), "kubernetes/creds/reins-staging", nil)
	if err == nil || !Retryable(err) {
		t.Errorf("Vault down: %v, want a retryable error", err)
	}
	if Retryable(context.Canceled) || Retryable(fmt.Errorf("x: %w", context.Canceled)) {
		t.Error("a cancelled request is retryable")
	}
	if !Retryable(errors.New("dial tcp: connection refused")) {
		t.Error("a connection error is final")
	}
}

func TestNewChecksSettings(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	for _, o := range []Options{
		{Method: MethodToken},
		{Method: MethodAppRole, RoleID: "r"},
		{Method: MethodKubernetes},
		{Method: "userpass"},
		{Method: MethodToken, TokenFile: filepath.Join(t.TempDir(), "missing")},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	c, err := New(Options{Method: MethodToken, TokenFile: secretFile(t, "hvs.from-file")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %s", c, c, c), "hvs.from-file") {
		t.Error("printing the client shows its token")
	}
}

// relogVault accepts one token at a time: a login voids the current token
// as soon as it arrives and answers loginDelay later with a new one. The
// requests sent with the token set by expire are refused together: once
// want of them have arrived, the first is refused at once and the others
// only when a login arrives, so that they are refused while that login is
// under way. Requests with any other token are checked checkDelay after they
// arrive, long enough for a login sent meanwhile to void their token.
type relogVault struct {
	want       int
	loginDelay time.Duration
	checkDelay time.Duration

	mu       sync.Mutex
	valid    string
	n        int
	logins   int
	stale    string
	arrived  int
	answered bool
	all      chan struct{} // closed when want stale requests have arrived
	relogin  chan struct{} // closed when a login arrives after expire
}

// expire voids the current token: the next requests carry it.
func (f *relogVault) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stale, f.valid = f.valid, ""
	f.all, f.relogin = make(chan struct{}), make(chan struct{})
}

func (f *relogVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/auth/approle/login" {
		f.mu.Lock()
		f.logins++
		f.n++
		tok := fmt.Sprintf("hvs.token-%d", f.n)
		f.valid = ""
		if f.relogin != nil {
			select {
			case <-f.relogin:
			default:
				close(f.relogin)
			}
		}
		f.mu.Unlock()
		time.Sleep(f.loginDelay)
		f.mu.Lock()
		f.valid = tok
		f.mu.Unlock()
		fmt.Fprintf(w, `{"auth":{"client_token":%q,"lease_duration":3600,"renewable":false}}`, tok)
		return
	}
	tok := r.Header.Get("X-Vault-Token")
	f.mu.Lock()
	stale := tok != "" && tok == f.stale
	if !stale {
		f.mu.Unlock()
		time.Sleep(f.checkDelay)
		f.mu.Lock()
		ok := tok != "" && tok == f.valid
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["permission denied"]}`)
			return
		}
		fmt.Fprint(w, `{"data":{"ok":true}}`)
		return
	}
	f.arrived++
	if f.arrived == f.want {
		close(f.all)
	}
	all, relogin := f.all, f.relogin
	f.mu.Unlock()
	select {
	case <-all:
	case <-time.After(5 * time.Second):
	}
	f.mu.Lock()
	first := !f.answered
	f.answered = true
	f.mu.Unlock()
	if !first {
		select {
		case <-relogin:
		case <-time.After(5 * time.Second):
		}
	}
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprint(w, `{"errors":["permission denied"]}`)
}

// Requests refused together because their token was lost log in once: the
// first one refused logs in, and the others, refused while it did, keep its
// new token instead of dropping it (which sent their retry, or its own,
// with no token or with a token voided by yet another login, and made the
// refusal final).
func TestConcurrentRefusalsKeepTheNewLogin(t *testing.T) {
	const n = 4
	f := &relogVault{want: n, loginDelay: 200 * time.Millisecond, checkDelay: 100 * time.Millisecond}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(Options{Addr: srv.URL, Method: MethodAppRole, RoleID: "role", SecretIDFile: secretFile(t, "s3cret-id"), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Read(ctx, "secret/x"); err != nil {
		t.Fatal(err)
	}
	f.expire()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Read(ctx, "secret/x")
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a request refused with the lost token failed: %v", err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logins != 2 {
		t.Errorf("%d logins, want 2 (the first, and one after the token was lost)", f.logins)
	}
}

// flakyVault fails every request to one path with a 500 and counts them;
// its logins fail with a 500 the first loginFailures times.
type flakyVault struct {
	loginFailures int

	mu       sync.Mutex
	logins   int
	requests int
}

func (f *flakyVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/auth/approle/login" {
		f.logins++
		if f.logins <= f.loginFailures {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["internal error"]}`)
			return
		}
		fmt.Fprintf(w, `{"auth":{"client_token":"hvs.token-%d","lease_duration":3600,"renewable":false}}`, f.logins)
		return
	}
	f.requests++
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprint(w, `{"errors":["internal error"]}`)
}

func (f *flakyVault) counts() (logins, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins, f.requests
}

// A write that creates something goes out once, whatever Vault answers (a
// repeat would mint a second lease and lose the first); its login, and
// every other request, are still retried.
func TestWriteOnceIsNotRepeated(t *testing.T) {
	f := &flakyVault{loginFailures: 1}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(Options{Addr: srv.URL, Method: MethodAppRole, RoleID: "role", SecretIDFile: secretFile(t, "s3cret-id"), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.WriteOnce(ctx, "kubernetes/creds/reins-staging", nil)
	if StatusCode(err) != http.StatusInternalServerError || !Retryable(err) {
		t.Fatalf("WriteOnce: %v, want the 500, retryable", err)
	}
	logins, requests := f.counts()
	if requests != 1 {
		t.Errorf("WriteOnce sent %d requests, want 1", requests)
	}
	if logins != 2 {
		t.Errorf("%d login attempts, want 2 (the login is retried)", logins)
	}
	if _, err := c.Write(ctx, "kubernetes/creds/reins-staging", nil); StatusCode(err) != http.StatusInternalServerError {
		t.Fatalf("Write: %v, want the 500", err)
	}
	if _, requests = f.counts(); requests != 3 {
		t.Errorf("Write sent %d requests, want 2 (MaxRetries 1)", requests-1)
	}
}
