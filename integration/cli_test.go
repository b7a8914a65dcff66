//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
)

// reins runs the CLI against the shared stack and returns its exit code and output.
func reins(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(buildReins(t), args...)
	cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+stack.temporal.Address,
		"TEMPORAL_NAMESPACE="+stack.temporal.Namespace,
		"REINS_IDENTITY=alice",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		t.Fatalf("run reins: %v", err)
	}
	return 0, out.String()
}

// Bad plans get a clear error naming the field, exit 1, and start nothing.
func TestStartRejectsBadPlans(t *testing.T) {
	good, err := os.ReadFile("../examples/checkout-rollback.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, plan, want string }{
		{"malformed", `{"incident": {`, "plan: is empty or cut short"},
		{"unknown action", strings.Replace(string(good), "kubernetes.scale", "kubernetes.nuke", 1), `steps[1].action: unknown action "kubernetes.nuke"`},
		{"missing target", strings.Replace(string(good), `"name": "checkout"},
     "params": {"replicas": 6}`, `"name": ""},
     "params": {"replicas": 6}`, 1), "steps[1].target.name: is required"},
		{"negative replicas", strings.Replace(string(good), `"replicas": 6`, `"replicas": -3`, 1), "steps[1].params.replicas: must be from 0 to 10000, got -3"},
		{"oversize", `{"explanation":"` + strings.Repeat("x", 70000) + `"}`, "is larger than 65536 bytes"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fp := fmt.Sprintf("bad-%d-%s", i, unique("fp"))
			plan := strings.Replace(c.plan, `"fingerprint": "4f1c2a"`, `"fingerprint": "`+fp+`"`, 1)
			path := filepath.Join(dir, fmt.Sprintf("plan-%d.json", i))
			if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := reins(t, "start", "-f", path)
			if code != 1 || !strings.Contains(out, c.want) || !strings.Contains(out, "nothing was started") {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, c.want)
			}
			code, out = reins(t, "plan", "validate", "-f", path)
			if code != 1 || !strings.Contains(out, c.want) {
				t.Errorf("plan validate: exit %d, output:\n%s", code, out)
			}
			resp, err := stack.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowId = '%s'", incidentID("alertmanager", fp)),
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetExecutions()); n != 0 {
				t.Errorf("%d workflows started for a bad plan", n)
			}
		})
	}
}
