package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/audit"
)

// Environment variables of the audit sinks (they override the config file).
const (
	EnvAuditNATSURL     = "REINS_AUDIT_NATS_URL"
	EnvAuditFile        = "REINS_AUDIT_FILE"
	EnvAuditWebhookURL  = "REINS_AUDIT_WEBHOOK_URL"
	EnvAuditWebhookAuth = "REINS_AUDIT_WEBHOOK_TOKEN"
)

// AuditConfig says where the audit records go: to every configured sink.
// A worker refuses to start when none is configured: reins does not
// remediate without an audit trail. (`reins dev` configures the embedded
// NATS and a file; production configures NATS, usually with a webhook to
// the SIEM.) Clients such as `reins start` need no sink.
type AuditConfig struct {
	NATS    AuditNATSConfig    `json:"nats"`
	File    AuditFileConfig    `json:"file"`
	Webhook AuditWebhookConfig `json:"webhook"`
}

// AuditNATSConfig is the JetStream sink, the main one.
type AuditNATSConfig struct {
	// URL of the NATS server (several comma-separated). Empty: no NATS sink.
	// Env REINS_AUDIT_NATS_URL.
	URL string `json:"url"`
	// Stream is the JetStream stream, created if missing (file storage, deny
	// delete and purge). Default "REINS_AUDIT".
	Stream string `json:"stream"`
	// Subject is the subject prefix: a remediation's records go to
	// <subject>.<remediation ID> (escaped). Default "reins.audit".
	Subject string `json:"subject"`
	// DuplicateWindow is the stream's deduplication window when reins creates
	// it. Default 24h.
	DuplicateWindow Duration `json:"duplicate_window"`
	// CredentialsFile is a NATS .creds file. Default: none.
	CredentialsFile string `json:"credentials_file"`
}

// AuditFileConfig is the append-only JSON-lines file sink.
type AuditFileConfig struct {
	// Path of the file (absolute). Empty: no file sink. Env REINS_AUDIT_FILE.
	Path string `json:"path"`
}

// AuditWebhookConfig is the HTTP sink, e.g. a SIEM's collector.
type AuditWebhookConfig struct {
	// URL receives a POST per record. Empty: no webhook. Env REINS_AUDIT_WEBHOOK_URL.
	URL string `json:"url"`
	// Timeout bounds each request. Default 10s.
	Timeout Duration `json:"timeout"`
	// Token is sent as a bearer token; only from env REINS_AUDIT_WEBHOOK_TOKEN.
	Token string `json:"-"`
}

// DefaultAuditConfig has no sink: which ones to use must be chosen.
func DefaultAuditConfig() AuditConfig {
	return AuditConfig{
		NATS: AuditNATSConfig{
			Stream:          audit.DefaultStream,
			Subject:         audit.DefaultSubjectPrefix,
			DuplicateWindow: Duration(audit.DefaultDuplicateWindow),
		},
		Webhook: AuditWebhookConfig{Timeout: Duration(10 * time.Second)},
	}
}

// Configured reports whether at least one sink is configured.
func (a AuditConfig) Configured() bool {
	return a.NATS.URL != "" || a.File.Path != "" || a.Webhook.URL != ""
}

func (a *AuditConfig) applyEnv() {
	for _, e := range []struct {
		dst *string
		env string
	}{{&a.NATS.URL, EnvAuditNATSURL}, {&a.File.Path, EnvAuditFile}, {&a.Webhook.URL, EnvAuditWebhookURL}, {&a.Webhook.Token, EnvAuditWebhookAuth}} {
		if v := os.Getenv(e.env); v != "" {
			*e.dst = v
		}
	}
}

func (a AuditConfig) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config audit.%s: "+format, append([]any{field}, args...)...))
	}
	if a.NATS.URL != "" {
		for _, raw := range strings.Split(a.NATS.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || u.Host == "" || !oneOf(u.Scheme, "nats", "tls", "ws", "wss") {
				bad("nats.url", "%q is not a NATS URL such as nats://127.0.0.1:4222", raw)
			}
		}
	}
	if a.NATS.Stream == "" || strings.ContainsAny(a.NATS.Stream, " \t.*>/\\") {
		bad("nats.stream", "%q must be a stream name without spaces, '.', '*', '>', '/' or '\\'; leave it out for %q", a.NATS.Stream, audit.DefaultStream)
	}
	if !validSubjectPrefix(a.NATS.Subject) {
		bad("nats.subject", "%q must be dot-separated tokens without spaces, '*' or '>'; leave it out for %q", a.NATS.Subject, audit.DefaultSubjectPrefix)
	}
	if a.NATS.DuplicateWindow <= 0 {
		bad("nats.duplicate_window", "must be positive, e.g. \"24h\"")
	}
	if a.File.Path != "" && !filepath.IsAbs(a.File.Path) {
		bad("file.path", "%q must be an absolute path", a.File.Path)
	}
	if a.Webhook.URL != "" {
		u, err := url.Parse(a.Webhook.URL)
		if err != nil || u.Host == "" || !oneOf(u.Scheme, "http", "https") {
			bad("webhook.url", "%q must be an http or https URL", a.Webhook.URL)
		}
	}
	if a.Webhook.Timeout <= 0 {
		bad("webhook.timeout", "must be positive, e.g. \"10s\"")
	}
	return errs
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

func validSubjectPrefix(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

// AuditSinks are the open sinks of a worker.
type AuditSinks struct {
	Sinks   []activities.AuditSink
	closers []func() error
}

// Close closes every sink.
func (s *AuditSinks) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// OpenAuditSinks opens every configured sink, in the order NATS, file,
// webhook. With none configured it refuses: see AuditConfig.
func OpenAuditSinks(ctx context.Context, cfg AuditConfig, logger *slog.Logger) (*AuditSinks, error) {
	if !cfg.Configured() {
		return nil, errors.New("no audit sink configured: reins refuses to run remediations without an audit trail; " +
			"set audit.nats.url (or " + EnvAuditNATSURL + "), audit.file.path (or " + EnvAuditFile + ") or audit.webhook.url (or " + EnvAuditWebhookURL + ")")
	}
	out := &AuditSinks{}
	fail := func(err error) (*AuditSinks, error) {
		_ = out.Close()
		return nil, err
	}
	if cfg.NATS.URL != "" {
		n, err := openNATS(ctx, cfg, logger)
		if err != nil {
			return fail(err)
		}
		out.Sinks, out.closers = append(out.Sinks, n), append(out.closers, n.Close)
	}
	if cfg.File.Path != "" {
		f, err := audit.OpenFile(cfg.File.Path, logger)
		if err != nil {
			return fail(err)
		}
		out.Sinks, out.closers = append(out.Sinks, f), append(out.closers, f.Close)
	}
	if cfg.Webhook.URL != "" {
		w, err := audit.NewWebhook(audit.WebhookOptions{URL: cfg.Webhook.URL, Token: cfg.Webhook.Token, Timeout: time.Duration(cfg.Webhook.Timeout)})
		if err != nil {
			return fail(err)
		}
		out.Sinks, out.closers = append(out.Sinks, w), append(out.closers, w.Close)
	}
	names := make([]string, 0, len(out.Sinks))
	for _, s := range out.Sinks {
		names = append(names, s.Name())
	}
	logger.Info("audit sinks open", "sinks", names)
	return out, nil
}

func openNATS(ctx context.Context, cfg AuditConfig, logger *slog.Logger) (*audit.NATS, error) {
	return audit.OpenNATS(ctx, audit.NATSOptions{
		URL:             cfg.NATS.URL,
		Stream:          cfg.NATS.Stream,
		SubjectPrefix:   cfg.NATS.Subject,
		DuplicateWindow: time.Duration(cfg.NATS.DuplicateWindow),
		CredentialsFile: cfg.NATS.CredentialsFile,
		Logger:          logger,
	})
}

// ReadAudit reads remediation id's records back from a sink: "nats" or
// "file" (a webhook cannot be read back).
func ReadAudit(ctx context.Context, cfg AuditConfig, from, id string, logger *slog.Logger) ([][]byte, error) {
	switch from {
	case "nats":
		if cfg.NATS.URL == "" {
			return nil, fmt.Errorf("no NATS audit sink configured (audit.nats.url or %s)", EnvAuditNATSURL)
		}
		n, err := openNATS(ctx, cfg, logger)
		if err != nil {
			return nil, err
		}
		defer n.Close()
		return n.Read(ctx, id)
	case "file":
		if cfg.File.Path == "" {
			return nil, fmt.Errorf("no audit file configured (audit.file.path or %s)", EnvAuditFile)
		}
		return audit.ReadFile(cfg.File.Path, id)
	case "webhook":
		return nil, errors.New("a webhook cannot be read back: verify the copy in NATS (--from nats) or the file (--from file)")
	}
	return nil, fmt.Errorf("--from %q: use nats or file", from)
}
