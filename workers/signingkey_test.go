package workers

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kvServer serves KV v2 secrets (path → data) as Vault does, for the token "t0k".
func kvServer(t *testing.T, secrets map[string]map[string]any) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != "t0k" {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		data, ok := secrets[strings.TrimPrefix(r.URL.Path, "/v1/")]
		if !ok || r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[]}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": data, "metadata": map[string]any{"version": 1}}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGatewaySigningKeyFromVault(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	addr := kvServer(t, map[string]map[string]any{
		"secret/data/reins/gateway": {SigningKeyVaultField: base64.StdEncoding.EncodeToString(key) + "\n"},
		"secret/data/reins/other":   {"key": base64.StdEncoding.EncodeToString(key)},
		"secret/data/reins/short":   {SigningKeyVaultField: base64.StdEncoding.EncodeToString(key[:32])},
	})
	t.Setenv("VAULT_TOKEN", "t0k")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfgFor := func(path string) Config {
		cfg := DefaultConfig()
		cfg.Vault.Addr = addr
		cfg.Approvals.SigningKeyVault = path
		return cfg
	}

	got, err := cfgFor("/secret/data/reins/gateway").GatewaySigningKey(context.Background(), logger)
	if err != nil || !got.Equal(key) {
		t.Fatalf("key from Vault: %v (equal: %v)", err, got.Equal(key))
	}
	for path, want := range map[string]string{
		"secret/data/reins/missing": "no such secret in Vault (write it with: vault kv put secret/reins/missing signing_key=",
		"secret/data/reins/other":   `the secret has no string field "signing_key"`,
		"secret/data/reins/short":   "must hold the base64 of a 64-byte Ed25519 private key",
		"secret/reins/gateway":      "is not the API path of a KV v2 secret",
	} {
		_, err := cfgFor(path).GatewaySigningKey(context.Background(), logger)
		if err == nil || !strings.Contains(err.Error(), "config approvals.signing_key_vault") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
	t.Setenv("VAULT_TOKEN", "wrong")
	if _, err := cfgFor("secret/data/reins/gateway").GatewaySigningKey(context.Background(), logger); err == nil || !strings.Contains(err.Error(), "read secret/data/reins/gateway from Vault") {
		t.Errorf("refused by Vault: %v", err)
	}
}

func TestGatewaySigningKeyFromFile(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "approval.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Approvals.SigningKeyFile = path
	got, err := cfg.GatewaySigningKey(context.Background(), nil)
	if err != nil || !got.Equal(key) {
		t.Fatalf("key from file: %v", err)
	}
	cfg.Approvals.SigningKeyVault = "secret/data/reins/gateway"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "config approvals.signing_key_vault: set it or approvals.signing_key_file, not both") {
		t.Errorf("both configured: %v", err)
	}
	if _, err := cfg.GatewaySigningKey(context.Background(), nil); err == nil {
		t.Error("a key configured twice was read")
	}
	if _, err := DefaultConfig().GatewaySigningKey(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "approvals.signing_key_file is not set") {
		t.Errorf("no key configured: %v", err)
	}
}
