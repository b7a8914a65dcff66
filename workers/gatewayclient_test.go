package workers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGatewayClientFromFile(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  bob-secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "reins.yaml")
	if err := os.WriteFile(path, []byte("client:\n  url: https://reins.example.com/\n  token_file: "+tokenFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfig, "")
	t.Setenv(EnvGatewayURL, "")
	t.Setenv(EnvClientToken, "")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if base, err := cfg.Client.BaseURL(); err != nil || base != "https://reins.example.com" {
		t.Errorf("base URL %q, %v", base, err)
	}
	if tok, err := cfg.Client.Token(); err != nil || tok != "bob-secret-token" {
		t.Errorf("token %q, %v", tok, err)
	}
}

func TestGatewayClientEnvOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reins.yaml")
	if err := os.WriteFile(path, []byte("client:\n  url: https://reins.example.com\n  token_file: /nonexistent/token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfig, "")
	t.Setenv(EnvGatewayURL, "http://127.0.0.1:8081")
	t.Setenv(EnvClientToken, "env-token")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if base, err := cfg.Client.BaseURL(); err != nil || base != "http://127.0.0.1:8081" {
		t.Errorf("base URL %q, %v", base, err)
	}
	if tok, err := cfg.Client.Token(); err != nil || tok != "env-token" {
		t.Errorf("token %q, %v: the environment's token comes first", tok, err)
	}
}

func TestGatewayClientNamesBadFields(t *testing.T) {
	t.Setenv(EnvGatewayURL, "")
	t.Setenv(EnvClientToken, "")
	for _, url := range []string{"reins.example.com", "ftp://reins.example.com", "https://", "https://reins.example.com/?x=1"} {
		cfg := DefaultConfig()
		cfg.Client.URL = url
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "config client.url:") {
			t.Errorf("client.url %q: %v", url, err)
		}
	}
	var none GatewayClientConfig
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("no client section is valid for the commands that do not need it: %v", err)
	}
	if _, err := none.BaseURL(); err == nil || !strings.Contains(err.Error(), "client.url is not set (or set "+EnvGatewayURL) {
		t.Errorf("base URL without config: %v", err)
	}
	if _, err := none.Token(); err == nil || !strings.Contains(err.Error(), "client.token_file is not set (or set "+EnvClientToken) {
		t.Errorf("token without config: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (GatewayClientConfig{TokenFile: empty}).Token(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
	if _, err := (GatewayClientConfig{TokenFile: "/nonexistent/token"}).Token(); err == nil || !strings.Contains(err.Error(), "config client.token_file:") {
		t.Errorf("missing token file: %v", err)
	}
}

func TestConfigClusterIsADNSName(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster = "prod-eu-1"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("cluster prod-eu-1: %v", err)
	}
	cfg.Cluster = "Prod EU"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `config cluster: must be a DNS name`) {
		t.Fatalf("cluster %q: %v", cfg.Cluster, err)
	}
}
