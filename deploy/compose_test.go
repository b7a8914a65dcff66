package deploy_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

type compose struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Build       any               `json:"build"`
		Command     any               `json:"command"`
		DependsOn   any               `json:"depends_on"`
		Environment map[string]string `json:"environment"`
		Ports       []string          `json:"ports"`
	} `json:"services"`
}

// No Docker engine runs here, so the compose file is checked by reading it:
// every service reins needs is there and wired to the others.
func TestComposeStack(t *testing.T) {
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"postgresql", "temporal", "temporal-setup", "temporal-ui", "vault", "nats", "reins-worker", "reins-gateway"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	dependsOn := func(svc, on string) bool {
		switch d := c.Services[svc].DependsOn.(type) {
		case []any:
			return slices.Contains(d, any(on))
		case map[string]any:
			_, ok := d[on]
			return ok
		}
		return false
	}
	temporal := c.Services["temporal"]
	if temporal.Environment["DB"] != "postgres12" || temporal.Environment["POSTGRES_SEEDS"] != "postgresql" || !dependsOn("temporal", "postgresql") {
		t.Errorf("temporal is not wired to postgresql: %+v", temporal.Environment)
	}
	if !slices.Contains(temporal.Ports, "7233:7233") {
		t.Errorf("temporal does not publish 7233: %v", temporal.Ports)
	}
	for _, svc := range []string{"temporal-ui", "temporal-setup", "reins-worker", "reins-gateway"} {
		if c.Services[svc].Environment["TEMPORAL_ADDRESS"] != "temporal:7233" {
			t.Errorf("%s: TEMPORAL_ADDRESS %q, want temporal:7233", svc, c.Services[svc].Environment["TEMPORAL_ADDRESS"])
		}
	}
	if !dependsOn("reins-worker", "temporal-setup") || !dependsOn("temporal-setup", "temporal") {
		t.Error("the worker must start after the search attributes are registered")
	}
	worker := c.Services["reins-worker"]
	if worker.Build != "." || worker.Environment["KUBECONFIG"] == "" {
		t.Errorf("reins-worker must be built from this repository and given a kubeconfig: %+v", worker)
	}
	// A worker refuses to run without an audit sink: the compose stack's is NATS.
	if worker.Environment[workers.EnvAuditNATSURL] != "nats://nats:4222" || !dependsOn("reins-worker", "nats") {
		t.Errorf("reins-worker must send its audit records to the nats service: %+v", worker.Environment)
	}
	if cmd, _ := c.Services["nats"].Command.([]any); !slices.Contains(cmd, any("-js")) {
		t.Errorf("nats must run with JetStream (-js): %v", c.Services["nats"].Command)
	}
	setup, _ := c.Services["temporal-setup"].Command.([]any)
	script := ""
	for _, s := range setup {
		script += s.(string)
	}
	for _, attr := range workflows.SearchAttributes() {
		name, typ, _ := strings.Cut(attr, "=")
		if !strings.Contains(script, "--name "+name+" --type "+typ) {
			t.Errorf("temporal-setup does not register %s", attr)
		}
	}
	gateway := c.Services["reins-gateway"]
	if gateway.Build != "." || !slices.Contains(gateway.Ports, "8081:8081") || gateway.Environment["REINS_GATEWAY_TOKEN"] == "" {
		t.Errorf("reins-gateway must be built here, publish 8081 and get its token: %+v", gateway)
	}
	if ep := c.Services["temporal-ui"].Environment["TEMPORAL_CODEC_ENDPOINT"]; ep != "http://localhost:8081/codec" {
		t.Errorf("the UI's codec endpoint is %q, want the gateway's http://localhost:8081/codec", ep)
	}
	if _, err := os.Stat("../Dockerfile"); err != nil {
		t.Errorf("reins-worker builds from the Dockerfile: %v", err)
	}
}
