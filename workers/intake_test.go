package workers

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const intakeYAML = `
intake:
  tokens: [%s]
  triggers:
    - name: replicas
      match: {type: KubeDeploymentReplicasMismatch, labels: ['namespace=~"shop-.*"']}
      playbook:
        environment: production
        explanation: 'scale {{ .labels.deployment }}'
        steps:
          - {action: kubernetes.scale, target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ .labels.deployment }}'}, params: {replicas: 3}, justification: back to 3}
  nats: {url: "nats://127.0.0.1:4222", subject: "events.>", ack_wait: 10s, create_stream: true}
  limits: {max_alerts: 50}
`

func loadIntake(t *testing.T, doc string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	if err := yaml.UnmarshalStrict([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, cfg.Validate()
}

func TestIntakeConfig(t *testing.T) {
	sum := sha256.Sum256([]byte("alertmanager-token-123456"))
	cfg, err := loadIntake(t, strings.Replace(intakeYAML, "%s", hex.EncodeToString(sum[:]), 1))
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Intake
	if !in.Enabled() || !in.HTTPEnabled() || !in.NATSEnabled() {
		t.Errorf("enabled %v, http %v, nats %v", in.Enabled(), in.HTTPEnabled(), in.NATSEnabled())
	}
	hashes, err := in.TokenHashes()
	if err != nil || len(hashes) != 1 || string(hashes[0]) != string(sum[:]) {
		t.Errorf("hashes %x, %v", hashes, err)
	}
	ts, err := in.CompileTriggers()
	if err != nil || ts.Len() != 1 {
		t.Fatalf("triggers: %v", err)
	}
	o := in.ConsumerOptions(nil)
	if o.URL != "nats://127.0.0.1:4222" || o.Subject != "events.>" || o.AckWait != 10*time.Second || !o.CreateStream || o.Limits.MaxAlerts != 50 {
		t.Errorf("consumer options %+v", o)
	}
	if in.Queued() {
		t.Error("http_delivery left out: queued")
	}
	queued, err := loadIntake(t, strings.Replace(strings.Replace(intakeYAML, "%s", hex.EncodeToString(sum[:]), 1), "  limits:", "  http_delivery: queue\n  limits:", 1))
	if err != nil || !queued.Intake.Queued() {
		t.Errorf("http_delivery: queue: queued %v, %v", queued.Intake.Queued(), err)
	}
	// Off by default.
	if d := DefaultConfig().Intake; d.Enabled() || d.HTTPEnabled() || d.NATSEnabled() || d.Queued() {
		t.Error("the default config has an intake")
	}
}

func TestIntakeConfigFiles(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("first-token-0123456789\n\nsecond-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	triggers := filepath.Join(dir, "triggers.yaml")
	if err := os.WriteFile(triggers, []byte(`
triggers:
  - name: from-file
    playbook: {environment: e, explanation: x, steps: [{action: kubernetes.cordon, target: {kind: Node, name: node-1}, justification: j}]}
  - name: bad-one
    match: {labels: ['severity']}
    playbook: {environment: e, explanation: x, steps: [{action: kubernetes.cordon, target: {kind: Node, name: node-1}, justification: j}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	in := IntakeConfig{TokenFile: tokens, TriggersFile: triggers}
	hashes, err := in.TokenHashes()
	first := sha256.Sum256([]byte("first-token-0123456789"))
	if err != nil || len(hashes) != 2 || string(hashes[0]) != string(first[:]) {
		t.Errorf("hashes from the file: %d, %v", len(hashes), err)
	}
	_, err = in.CompileTriggers()
	if err == nil || !strings.Contains(err.Error(), "config intake.triggers_file "+triggers+": triggers[1].match.labels[0]") {
		t.Errorf("a bad trigger in the file: %v", err)
	}
	if err := os.WriteFile(tokens, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := in.TokenHashes(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a short token: %v", err)
	}
}

func TestIntakeConfigRefuses(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"token in clear", strings.Replace(intakeYAML, "%s", "my-secret-token", 1), "config intake.tokens[0]"},
		{"bad trigger", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), "name: replicas", "name: Replicas", 1), "config intake.triggers[0].name"},
		{"bad subject", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), `"events.>"`, `"events.>.x"`, 1), "config intake.nats.subject"},
		{"bad url", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), "nats://127.0.0.1:4222", "http://x", 1), "config intake.nats.url"},
		{"short ack wait", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), "10s", "10ms", 1), "config intake.nats.ack_wait"},
		{"negative limit", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), "max_alerts: 50", "max_alerts: -1", 1), "config intake.limits.max_alerts"},
		{"unknown delivery", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), "  limits:", "  http_delivery: async\n  limits:", 1), `config intake.http_delivery: is "async"; use "direct"`},
		{"queue without nats", "intake:\n  tokens: [" + good + "]\n  http_delivery: queue\n  triggers_file: /t.yaml\n", "config intake.http_delivery: is \"queue\", but intake.nats.url is not set"},
		{"queue subject outside", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), "create_stream: true", "create_stream: true, queue_subject: other.http", 1), "config intake.nats.queue_subject \"other.http\" is not matched by intake.nats.subject"},
		{"queue subject with wildcard filter", strings.Replace(strings.Replace(intakeYAML, "%s", good, 1), `"events.>", `, `"events.*.x", `, 1) + "  http_delivery: queue\n", "config intake.nats.queue_subject: intake.nats.subject \"events.*.x\" has wildcards"},
		{"no door", "intake:\n  triggers_file: /etc/reins/triggers.yaml\n", "config intake.triggers: are configured but no door"},
		{"no trigger", "intake:\n  tokens: [" + good + "]\n", "config intake.triggers: are not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadIntake(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
