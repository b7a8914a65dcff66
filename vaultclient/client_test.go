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
