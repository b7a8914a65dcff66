package workers

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/reins-dev/reins/intake"
)

// IntakeConfig configures the event doors (Alertmanager, CloudEvents over
// HTTP, NATS JetStream) and the triggers that map events to playbooks
// (package intake documents both). The intake is off when no trigger is
// configured. `reins gateway` serves the HTTP doors when a token is
// configured, and runs the NATS consumer when nats.url is set.
type IntakeConfig struct {
	// Tokens are the lower-case hex SHA-256 sums of the bearer tokens the
	// HTTP doors accept, e.g. the output of `printf %s "$TOKEN" | sha256sum`.
	// Alertmanager sends its token with http_config.authorization.credentials.
	Tokens []string `json:"tokens"`
	// TokenFile holds more accepted tokens in clear, one per line (a secret:
	// keep it 0600). Default: none.
	TokenFile string `json:"token_file"`
	// Triggers are tried in order, before those of TriggersFile.
	Triggers []intake.TriggerConfig `json:"triggers"`
	// TriggersFile is a YAML file with more triggers under the key
	// "triggers", read when the gateway starts.
	TriggersFile string `json:"triggers_file"`
	// HTTPDelivery is how the HTTP doors hand on the events a trigger
	// takes: "direct" (the default) starts the remediation and answers once
	// Temporal accepted the start; "queue" puts the event on the NATS
	// JetStream stream (nats) and answers once JetStream stored it, and
	// the NATS consumer starts the remediation: the answer no longer waits
	// for Temporal. Either way a bad request is refused, and an unmatched
	// event answered and recorded, before anything is started or queued.
	HTTPDelivery string `json:"http_delivery"`
	// NATS is the JetStream door.
	NATS IntakeNATSConfig `json:"nats"`
	// Limits bound every event read (see intake.Limits for the defaults).
	Limits intake.Limits `json:"limits"`
}

// IntakeNATSConfig is the JetStream consumer of the intake. The zero value
// of each field but URL is its default.
type IntakeNATSConfig struct {
	// URL of the NATS server (several comma-separated). Empty: no NATS door.
	URL string `json:"url"`
	// CredentialsFile is a NATS .creds file. Default: none.
	CredentialsFile string `json:"credentials_file"`
	// Stream holds the events. Default "REINS_EVENTS".
	Stream string `json:"stream"`
	// Subject the consumer takes from the stream (wildcards allowed).
	// Default "reins.events.>".
	Subject string `json:"subject"`
	// Durable is the consumer's name; a restarted gateway resumes from it.
	// Default "reins-intake".
	Durable string `json:"durable"`
	// CreateStream creates the stream, taking Subject, when it is missing.
	CreateStream bool `json:"create_stream"`
	// AckWait is how long a message may be in hand before NATS sends it
	// again. Default 30s.
	AckWait Duration `json:"ack_wait"`
	// MaxDeliver bounds the deliveries of a message that keeps failing.
	// Default 1000.
	MaxDeliver int `json:"max_deliver"`
	// Concurrency is how many messages are handled at once. Default 16.
	Concurrency int `json:"concurrency"`
	// QueueSubject is where the HTTP doors publish with http_delivery
	// "queue": a subject without wildcards that Subject matches. Default:
	// Subject with its final ">" replaced by "http" ("reins.events.http").
	QueueSubject string `json:"queue_subject"`
}

// The intake's HTTP deliveries (IntakeConfig.HTTPDelivery).
const (
	// DeliveryDirect: the HTTP doors start remediations themselves.
	DeliveryDirect = "direct"
	// DeliveryQueue: the HTTP doors queue events on the intake's JetStream
	// stream, and its consumer starts them.
	DeliveryQueue = "queue"
)

// Enabled reports whether triggers are configured.
func (c IntakeConfig) Enabled() bool { return len(c.Triggers) > 0 || c.TriggersFile != "" }

// HTTPEnabled reports whether the HTTP doors are served: the intake is on
// and has a token.
func (c IntakeConfig) HTTPEnabled() bool {
	return c.Enabled() && (len(c.Tokens) > 0 || c.TokenFile != "")
}

// NATSEnabled reports whether the NATS consumer runs.
func (c IntakeConfig) NATSEnabled() bool { return c.Enabled() && c.NATS.URL != "" }

// Queued reports whether the HTTP doors queue events on the NATS stream
// (http_delivery: queue).
func (c IntakeConfig) Queued() bool {
	return c.HTTPEnabled() && c.NATSEnabled() && c.HTTPDelivery == DeliveryQueue
}

// CompileTriggers compiles Triggers, then those of TriggersFile.
func (c IntakeConfig) CompileTriggers() (*intake.Triggers, error) {
	cfgs := c.Triggers
	if c.TriggersFile != "" {
		more, err := intake.LoadTriggersFile(c.TriggersFile)
		if err != nil {
			return nil, fmt.Errorf("config intake.triggers_file: %w", err)
		}
		cfgs = append(cfgs[:len(cfgs):len(cfgs)], more...)
	}
	ts, err := intake.Compile(cfgs)
	if err != nil {
		return nil, intakeTriggerErrors(err, len(c.Triggers), c.TriggersFile)
	}
	return ts, nil
}

// intakeTriggerErrors names each bad field as the config holds it: the
// first inline triggers are intake.triggers[i], the next ones are the
// file's triggers[i-inline].
func intakeTriggerErrors(err error, inline int, file string) error {
	var ce *intake.ConfigError
	if !errors.As(err, &ce) {
		return fmt.Errorf("config intake.triggers: %w", err)
	}
	errs := make([]error, 0, len(ce.Errors))
	for _, fe := range ce.Errors {
		var i int
		var rest string
		if n, _ := fmt.Sscanf(fe.Field, "triggers[%d]", &i); n == 1 {
			_, rest, _ = strings.Cut(fe.Field, "]")
			if i >= inline {
				errs = append(errs, fmt.Errorf("config intake.triggers_file %s: triggers[%d]%s: %s", file, i-inline, rest, fe.Message))
				continue
			}
		}
		errs = append(errs, fmt.Errorf("config intake.%s: %s", fe.Field, fe.Message))
	}
	return errors.Join(errs...)
}

// TokenHashes are the SHA-256 sums of the accepted tokens: Tokens, and
// those of TokenFile hashed.
func (c IntakeConfig) TokenHashes() ([][]byte, error) {
	var out [][]byte
	for i, t := range c.Tokens {
		b, err := hex.DecodeString(strings.TrimSpace(t))
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("config intake.tokens[%d]: must be 64 hex digits, the SHA-256 of a token (printf %%s \"$TOKEN\" | sha256sum)", i)
		}
		out = append(out, b)
	}
	if c.TokenFile != "" {
		data, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("config intake.token_file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for line := 1; sc.Scan(); line++ {
			t := strings.TrimSpace(sc.Text())
			if t == "" {
				continue
			}
			if len(t) < 16 {
				return nil, fmt.Errorf("config intake.token_file %s: the token on line %d is shorter than 16 characters; use a long random one", c.TokenFile, line)
			}
			sum := sha256.Sum256([]byte(t))
			out = append(out, sum[:])
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("config intake.token_file %s: %w", c.TokenFile, err)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("config intake.tokens: no token configured; the HTTP doors are never served unauthenticated (set intake.tokens or intake.token_file)")
	}
	return out, nil
}

// ConsumerOptions are the NATS consumer's options.
func (c IntakeConfig) ConsumerOptions(logger *slog.Logger) intake.ConsumerOptions {
	n := c.NATS
	return intake.ConsumerOptions{
		URL: n.URL, CredentialsFile: n.CredentialsFile,
		Stream: n.Stream, Subject: n.Subject, Durable: n.Durable, CreateStream: n.CreateStream,
		AckWait: time.Duration(n.AckWait), MaxDeliver: n.MaxDeliver, Concurrency: n.Concurrency,
		QueueSubject: n.QueueSubject, Limits: c.Limits, Logger: logger,
	}
}

// validate names every bad field.
func (c IntakeConfig) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config intake.%s: "+format, append([]any{field}, args...)...))
	}
	for i, t := range c.Tokens {
		if b, err := hex.DecodeString(strings.TrimSpace(t)); err != nil || len(b) != sha256.Size {
			bad(fmt.Sprintf("tokens[%d]", i), "must be 64 hex digits, the SHA-256 of a token (printf %%s \"$TOKEN\" | sha256sum); never the token itself")
		}
	}
	if len(c.Triggers) > 0 {
		if _, err := intake.Compile(c.Triggers); err != nil {
			errs = append(errs, intakeTriggerErrors(err, len(c.Triggers), c.TriggersFile))
		}
	}
	hasDoor := len(c.Tokens) > 0 || c.TokenFile != "" || c.NATS.URL != ""
	switch {
	case c.Enabled() && !hasDoor:
		bad("triggers", "are configured but no door is: set intake.tokens or intake.token_file (HTTP), or intake.nats.url")
	case !c.Enabled() && hasDoor:
		bad("triggers", "are not configured: set intake.triggers or intake.triggers_file, or leave the intake's doors out")
	}
	switch c.HTTPDelivery {
	case "", DeliveryDirect:
	case DeliveryQueue:
		if c.NATS.URL == "" {
			bad("http_delivery", "is %q, but intake.nats.url is not set: the queue is the intake's NATS JetStream stream; set intake.nats (url, and create_stream or an existing stream), or use %q", DeliveryQueue, DeliveryDirect)
		}
		if len(c.Tokens) == 0 && c.TokenFile == "" {
			bad("http_delivery", "is %q, but the HTTP doors are off: set intake.tokens or intake.token_file, or leave http_delivery out", DeliveryQueue)
		}
	default:
		bad("http_delivery", "is %q; use %q (start remediations, answer once Temporal accepted) or %q (queue on intake.nats, answer once JetStream stored the event)", c.HTTPDelivery, DeliveryDirect, DeliveryQueue)
	}
	n := c.NATS
	if n.QueueSubject != "" || (c.HTTPDelivery == DeliveryQueue && n.Subject != "" && validSubject(n.Subject)) {
		if _, err := intake.QueueSubject(n.Subject, n.QueueSubject); err != nil {
			errs = append(errs, fmt.Errorf("config %w", err))
		}
	}
	if n.URL != "" {
		for _, raw := range strings.Split(n.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || u.Host == "" || !oneOf(u.Scheme, "nats", "tls", "ws", "wss") {
				bad("nats.url", "%q is not a NATS URL such as nats://127.0.0.1:4222", raw)
			}
		}
	}
	if n.Stream != "" && strings.ContainsAny(n.Stream, " \t.*>/\\") {
		bad("nats.stream", "%q must be a stream name without spaces, '.', '*', '>', '/' or '\\'; leave it out for %q", n.Stream, intake.DefaultStream)
	}
	if n.Durable != "" && strings.ContainsAny(n.Durable, " \t.*>/\\") {
		bad("nats.durable", "%q must be a consumer name without spaces, '.', '*', '>', '/' or '\\'; leave it out for %q", n.Durable, intake.DefaultDurable)
	}
	if n.Subject != "" && !validSubject(n.Subject) {
		bad("nats.subject", "%q must be dot-separated tokens without spaces, '*' a whole token and '>' only the last; leave it out for %q", n.Subject, intake.DefaultSubject)
	}
	if n.AckWait < 0 || (n.AckWait > 0 && time.Duration(n.AckWait) < time.Second) {
		bad("nats.ack_wait", "must be at least 1s, e.g. \"30s\"; leave it out for 30s")
	}
	if n.MaxDeliver < 0 {
		bad("nats.max_deliver", "must be positive; leave it out for %d", intake.DefaultMaxDeliver)
	}
	if n.Concurrency < 0 || n.Concurrency > 1024 {
		bad("nats.concurrency", "must be from 1 to 1024; leave it out for %d", intake.DefaultConcurrency)
	}
	l := c.Limits
	for _, f := range []struct {
		name     string
		v, limit int64
	}{
		{"max_body_bytes", l.MaxBodyBytes, 64 << 20},
		{"max_alerts", int64(l.MaxAlerts), 100000},
		{"max_labels", int64(l.MaxLabels), 1024},
		{"max_name_bytes", int64(l.MaxNameBytes), 4096},
		{"max_value_bytes", int64(l.MaxValueBytes), 1 << 20},
	} {
		if f.v < 0 || f.v > f.limit {
			bad("limits."+f.name, "must be from 1 to %d; leave it out for the default", f.limit)
		}
	}
	return errs
}

// validSubject checks a NATS subject that may have wildcards.
func validSubject(s string) bool {
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "" || strings.ContainsAny(tok, " \t\r\n"):
			return false
		case tok == ">" && i != len(toks)-1:
			return false
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return false
		}
	}
	return true
}
