package workers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVaultConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(EnvCredentials, "")
	t.Setenv("REINS_AUDIT_FILE", filepath.Join(dir, "audit.jsonl"))

	write("vault:\n  addr: http://127.0.0.1:8200\n  auth: {method: approle, role_id: r, secret_id_file: /run/secret-id}\n  roles: {production/payments: reins-payments}\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Credentials != CredentialsVault || cfg.Vault.KubernetesMount != "kubernetes" || cfg.Vault.Roles["production/payments"] != "reins-payments" {
		t.Errorf("defaults not kept: %+v", cfg.Vault)
	}

	write("credentials: vault\nvault:\n  auth: {method: approle}\n  credential_ttl: 1m\n")
	_, err = Load(path)
	for _, field := range []string{"vault.auth.role_id", "vault.auth.secret_id_file", "vault.credential_ttl"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	write("credentials: root\nvault:\n  auth: {method: userpass}\n")
	_, err = Load(path)
	for _, field := range []string{"config credentials", "vault.auth.method"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	// A secret never goes into the config: there is no field for one.
	write("vault:\n  auth: {token: s.abc}\n")
	if _, err := Load(path); err == nil {
		t.Error("a token in the config file was accepted")
	}
	t.Setenv(EnvCredentials, CredentialsStatic)
	write("")
	if cfg, err := Load(path); err != nil || cfg.Credentials != CredentialsStatic {
		t.Errorf("REINS_CREDENTIALS: %v %q", err, cfg.Credentials)
	}
}
