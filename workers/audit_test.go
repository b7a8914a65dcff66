package workers

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reins-dev/reins/audit"
)

func TestAuditConfigValidateNamesEachBadField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Audit = AuditConfig{
		NATS:    AuditNATSConfig{URL: "http://x:4222", Stream: "a.b", Subject: "reins.>", DuplicateWindow: 0},
		File:    AuditFileConfig{Path: "relative/audit.jsonl"},
		Webhook: AuditWebhookConfig{URL: "ftp://siem", Timeout: 0},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("a bad audit config validated")
	}
	for _, field := range []string{"audit.nats.url", "audit.nats.stream", "audit.nats.subject", "audit.nats.duplicate_window",
		"audit.file.path", "audit.webhook.url", "audit.webhook.timeout"} {
		if !strings.Contains(err.Error(), "config "+field+":") {
			t.Errorf("%s not named in: %v", field, err)
		}
	}
	good := DefaultConfig()
	good.Audit.NATS.URL = "nats://127.0.0.1:4222,tls://nats.example:4222"
	good.Audit.File.Path = "/var/log/reins/audit.jsonl"
	good.Audit.Webhook.URL = "https://siem.example/ingest"
	if err := good.Validate(); err != nil {
		t.Errorf("a good audit config: %v", err)
	}
}

func TestAuditConfigFromFileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reins.yaml")
	if err := os.WriteFile(path, []byte("audit:\n  nats:\n    url: nats://127.0.0.1:4222\n    duplicate_window: 48h\n  file:\n    path: /tmp/a.jsonl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfig, "")
	t.Setenv(EnvAuditWebhookURL, "https://siem.example/in")
	t.Setenv(EnvAuditWebhookAuth, "s3cret")
	t.Setenv(EnvAuditFile, "/tmp/b.jsonl")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Audit
	if a.NATS.URL != "nats://127.0.0.1:4222" || a.NATS.Stream != audit.DefaultStream || a.NATS.Subject != audit.DefaultSubjectPrefix ||
		time.Duration(a.NATS.DuplicateWindow) != 48*time.Hour || a.File.Path != "/tmp/b.jsonl" || a.Webhook.URL != "https://siem.example/in" || a.Webhook.Token != "s3cret" {
		t.Errorf("audit config %+v", a)
	}
	if !a.Configured() || DefaultConfig().Audit.Configured() {
		t.Error("Configured is wrong: the default has no sink, this config has three")
	}
}

// Without a sink the worker refuses to run: no remediation without an audit trail.
func TestNoAuditSinkRefused(t *testing.T) {
	_, err := OpenAuditSinks(context.Background(), DefaultAuditConfig(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "refuses to run remediations without an audit trail") {
		t.Fatalf("OpenAuditSinks with no sink: %v", err)
	}
	cfg := DefaultAuditConfig()
	cfg.File.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	sinks, err := OpenAuditSinks(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(sinks.Sinks) != 1 || sinks.Sinks[0].Name() != "file" {
		t.Errorf("sinks %v", sinks.Sinks)
	}
	if err := sinks.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAudit(context.Background(), cfg, "webhook", "x", nil); err == nil || !strings.Contains(err.Error(), "cannot be read back") {
		t.Errorf("reading a webhook back: %v", err)
	}
}
