package workers

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/remediation"
)

// Environment variables that override the config file.
const (
	EnvConfig     = "REINS_CONFIG"
	EnvTaskQueue  = "REINS_TASK_QUEUE"
	EnvKubeconfig = "KUBECONFIG"
	EnvPolicyDir  = "REINS_POLICY_DIR"
	EnvUIURL      = "REINS_TEMPORAL_UI"
	EnvIdentity   = "REINS_IDENTITY"
	// The Temporal connection follows Temporal's own conventions
	// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
	// TEMPORAL_PROFILE and the temporal.toml profile file).
)

// Duration is a time.Duration written as "90s" or "15m" in config.
type Duration time.Duration

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"90s\" or \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is everything the worker and the CLI need. Load it with Load; the
// zero value of a field means the default given in its comment.
type Config struct {
	// TaskQueue the worker polls and remediations are started on. Default "reins".
	TaskQueue string `json:"task_queue"`
	// Kubeconfig of the worker's own identity (read-only in production). Default:
	// $KUBECONFIG, then ~/.kube/config, then in-cluster.
	Kubeconfig string `json:"kubeconfig"`
	// Cluster names the Kubernetes cluster the kubeconfig reaches. A step
	// whose target names a cluster (target.cluster) must name this one:
	// the worker never acts on one cluster for a plan meant for another.
	// Default "": steps that name a cluster are refused.
	Cluster string `json:"cluster"`
	// PolicyDir is the operator's policy bundle folder, reloaded when it
	// changes. Default: the bundle built into reins.
	PolicyDir string `json:"policy_dir"`
	// TemporalUI is the Temporal UI's base URL, for links. Default http://localhost:8233.
	TemporalUI string `json:"temporal_ui"`
	// VerifyTimeout bounds each step's verification. Default 5m.
	VerifyTimeout Duration `json:"verify_timeout"`
	// EscalateAfter and ApprovalTimeout bound the wait for co-signers when the
	// policy sets no bound. Defaults 15m and 60m.
	EscalateAfter   Duration `json:"escalate_after"`
	ApprovalTimeout Duration `json:"approval_timeout"`
	// Approvals configures how co-signatures are signed and trusted.
	Approvals ApprovalConfig `json:"approvals"`
	// Identity is who the CLI acts as (requester of `reins start`, approver of
	// `reins approve`). Default $REINS_IDENTITY, then $USER.
	Identity Identity `json:"identity"`
	// Audit says where audit records go (see AuditConfig). A worker refuses
	// to start without at least one sink.
	Audit AuditConfig `json:"audit"`
	// Credentials is how steps write to Kubernetes: "vault" (default) mints
	// a credential per step from Vault (see Vault); "static" writes with
	// the worker's own kubeconfig identity, for clusters without Vault only
	// (that identity then needs write access). $REINS_CREDENTIALS.
	Credentials string `json:"credentials"`
	// Vault configures reins' Vault client and the per-step credentials.
	Vault VaultConfig `json:"vault"`
	// Codec encrypts every payload (see CodecConfig). Default: off.
	Codec CodecConfig `json:"codec"`
	// Gateway configures `reins gateway`.
	Gateway GatewayConfig `json:"gateway"`
	// Clients are the agents and humans the gateway authenticates.
	Clients ClientsConfig `json:"clients"`
	// Slack configures the Slack approval door.
	Slack SlackConfig `json:"slack"`
	// Intake configures the event doors and triggers.
	Intake IntakeConfig `json:"intake"`
	// Client is how the CLI reaches the gateway (reins approve, reins deny).
	Client GatewayClientConfig `json:"client"`
}

// ApprovalConfig holds the gateway keys.
type ApprovalConfig struct {
	// TrustedKeys are the public Ed25519 keys (base64) whose approvals the
	// worker accepts, by key ID.
	TrustedKeys map[string]string `json:"trusted_keys"`
	// SigningKeyFile holds the private key (base64 of the 64-byte Ed25519
	// key) that signs approvals; only the gateway needs it.
	SigningKeyFile string `json:"signing_key_file"`
	// SigningKeyVault is where the key is instead kept in Vault: the API
	// path of a KV v2 secret (e.g. "secret/data/reins/gateway") whose field
	// "signing_key" holds the same base64 text. The gateway reads it once
	// when it starts, with the vault section's client.
	SigningKeyVault string `json:"signing_key_vault"`
	// SigningKeyID names that key. Default "gateway".
	SigningKeyID string `json:"signing_key_id"`
}

// Identity is a human's identity and the approver groups they belong to.
type Identity struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		TaskQueue:       "reins",
		TemporalUI:      "http://localhost:8233",
		VerifyTimeout:   Duration(5 * time.Minute),
		EscalateAfter:   Duration(15 * time.Minute),
		ApprovalTimeout: Duration(60 * time.Minute),
		Approvals:       ApprovalConfig{SigningKeyID: "gateway"},
		Audit:           DefaultAuditConfig(),
		Credentials:     CredentialsVault,
		Vault:           DefaultVaultConfig(),
	}
}

// Load reads the config file at path (YAML or JSON; "" means $REINS_CONFIG,
// and none at all means the defaults), applies the environment overrides and
// validates the result.
func Load(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		path = os.Getenv(EnvConfig)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	cfg.applyEnv()
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func (c *Config) applyEnv() {
	set := func(dst *string, env string) {
		if v := os.Getenv(env); v != "" {
			*dst = v
		}
	}
	set(&c.TaskQueue, EnvTaskQueue)
	set(&c.PolicyDir, EnvPolicyDir)
	set(&c.TemporalUI, EnvUIURL)
	if c.Kubeconfig == "" {
		c.Kubeconfig = os.Getenv(EnvKubeconfig)
	}
	set(&c.Identity.Name, EnvIdentity)
	if c.Identity.Name == "" {
		c.Identity.Name = os.Getenv("USER")
	}
	c.Audit.applyEnv()
	c.Client.applyEnv()
	set(&c.Credentials, EnvCredentials)
	set(&c.Codec.KeyFile, EnvCodecKeyFile)
}

// Validate names every bad field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config %s: "+format, append([]any{field}, args...)...))
	}
	if strings.TrimSpace(c.TaskQueue) == "" {
		bad("task_queue", "is empty; leave it out for the default %q", "reins")
	}
	if c.Cluster != "" && !remediation.IsDNSName(c.Cluster) {
		bad("cluster", "must be a DNS name (lower-case letters, digits, '-', '.'), as plans name it in target.cluster; got %q", c.Cluster)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"verify_timeout", c.VerifyTimeout}, {"escalate_after", c.EscalateAfter}, {"approval_timeout", c.ApprovalTimeout}} {
		if d.v <= 0 {
			bad(d.name, "must be positive, e.g. \"5m\"")
		}
	}
	if c.EscalateAfter >= c.ApprovalTimeout {
		bad("escalate_after", "(%s) must be shorter than approval_timeout (%s)", time.Duration(c.EscalateAfter), time.Duration(c.ApprovalTimeout))
	}
	if _, err := c.Approvals.PublicKeys(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Approvals.validateSigningKey()...)
	errs = append(errs, c.Audit.validate()...)
	errs = append(errs, c.validateCredentials()...)
	errs = append(errs, c.validateCodec()...)
	errs = append(errs, c.Clients.validate()...)
	errs = append(errs, c.Gateway.TLS.validate(c.Clients)...)
	errs = append(errs, c.Slack.validate()...)
	errs = append(errs, c.Intake.validate()...)
	errs = append(errs, c.Client.validate()...)
	return errors.Join(errs...)
}

// PublicKeys decodes the trusted keys.
func (a ApprovalConfig) PublicKeys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(a.TrustedKeys))
	for id, s := range a.TrustedKeys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("config approvals.trusted_keys.%s: must be the base64 of a %d-byte Ed25519 public key (see `reins keygen`)", id, ed25519.PublicKeySize)
		}
		out[id] = ed25519.PublicKey(b)
	}
	return out, nil
}

// SigningKey reads the private signing key.
func (a ApprovalConfig) SigningKey() (ed25519.PrivateKey, error) {
	if a.SigningKeyFile == "" {
		return nil, errors.New("config approvals.signing_key_file is not set: this identity cannot sign approvals (see `reins keygen`)")
	}
	data, err := os.ReadFile(a.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("config approvals.signing_key_file: %w", err)
	}
	return parseSigningKey(string(data), "config approvals.signing_key_file "+a.SigningKeyFile)
}
