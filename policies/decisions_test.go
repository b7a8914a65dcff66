package policies

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// stepInput is an input for one step by the sre-agent, with cluster state
// (current replicas 3) and an quiet history.
func stepInput(env string, step remediation.Step) Input {
	plan := remediation.Plan{
		Incident:    remediation.Incident{Source: "alertmanager", Fingerprint: "f1"},
		Requester:   remediation.Requester{Kind: remediation.RequesterAgent, Name: "sre-agent"},
		Environment: env,
		Explanation: "checkout is saturated",
		Steps:       []remediation.Step{step},
	}
	state := &remediation.Snapshot{Exists: true, Replicas: ptr(int32(3)),
		Images:         []remediation.ContainerImage{{Container: "app", Image: "registry.example/checkout:v1.5.0"}},
		PreviousImages: []string{"registry.example/checkout:v1.4.2"}}
	return NewInput(plan, 0, testNow, state, &History{WindowSeconds: 3600})
}

const why = "checkout p99 latency is above its SLO for 10 minutes"

func scale(ns string, replicas int32) remediation.Step {
	return remediation.Step{Action: remediation.ActionScale,
		Target:        remediation.Target{Namespace: ns, Kind: remediation.KindDeployment, Name: "checkout"},
		Params:        remediation.Params{Replicas: ptr(replicas)},
		Justification: why}
}

func setImage(image string) remediation.Step {
	return remediation.Step{Action: remediation.ActionSetImage,
		Target:        remediation.Target{Namespace: "shop", Kind: remediation.KindDeployment, Name: "checkout"},
		Params:        remediation.Params{Container: "app", Image: image},
		Justification: why}
}

func podStep(action remediation.Action) remediation.Step {
	return remediation.Step{Action: action,
		Target:        remediation.Target{Namespace: "shop", Kind: remediation.KindPod, Name: "checkout-7d9f-x2"},
		Justification: why}
}

type decisionCase struct {
	name      string
	in        Input
	effect    remediation.Effect
	risk      remediation.Risk // "" = not checked
	approvers int
	reason    string // a reason must contain it; "" = not checked
}

func checkDecision(t *testing.T, e *Engine, tc decisionCase) {
	t.Helper()
	d := e.Decide(context.Background(), tc.in)
	if d.Effect != tc.effect || d.Approvers != tc.approvers || (tc.risk != "" && d.Risk != tc.risk) {
		t.Errorf("got %s/%s/%d, want %s/%s/%d; reasons %q", d.Effect, d.Risk, d.Approvers, tc.effect, tc.risk, tc.approvers, d.Reasons)
	}
	if tc.reason != "" && !hasReason(d, tc.reason) {
		t.Errorf("reasons %q: none contains %q", d.Reasons, tc.reason)
	}
	if len(d.Reasons) == 0 {
		t.Errorf("no reasons")
	}
	if d.Effect == remediation.EffectCosign && (d.Group != "oncall-sre" || d.EscalationGroup != "sre-leads" || d.EscalateAfterSeconds != 900 || d.TimeoutSeconds != 3600) {
		t.Errorf("cosign routing %q/%q/%d/%d, want oncall-sre/sre-leads/900/3600", d.Group, d.EscalationGroup, d.EscalateAfterSeconds, d.TimeoutSeconds)
	}
	if d.Bundle != e.Digest() {
		t.Errorf("bundle %q, want %q", d.Bundle, e.Digest())
	}
}

func hasReason(d remediation.Decision, text string) bool {
	for _, r := range d.Reasons {
		if strings.Contains(r, text) {
			return true
		}
	}
	return false
}

func TestDefaultBundleDecisions(t *testing.T) {
	e := newEngine(t, Options{})

	human := func(in Input) Input {
		in.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
		in.Plan.Requester = in.Requester
		return in
	}
	withoutState := func(in Input) Input { in.State = nil; return in }
	withHistory := func(in Input, h History) Input { h.WindowSeconds = 3600; in.History = &h; return in }
	agent := func(in Input, name string) Input {
		in.Requester = remediation.Requester{Kind: remediation.RequesterAgent, Name: name}
		return in
	}
	short := scale("shop", 4)
	short.Justification = "it is slow"

	for _, tc := range []decisionCase{
		{"staging scale", stepInput("staging", scale("shop", 4)), remediation.EffectAllow, remediation.RiskLow, 0, "kubernetes.scale is allowed in staging"},
		{"staging set-image", stepInput("staging", setImage("registry.example/checkout:v1.6.0")), remediation.EffectAllow, remediation.RiskLow, 0, ""},
		{"production scale 3 to 6", stepInput("production", scale("shop", 6)), remediation.EffectAllow, remediation.RiskMedium, 0, "allowed in production"},
		{"production scale 3 to 7", stepInput("production", scale("shop", 7)), remediation.EffectDeny, "", 0, "more than 2x in one step"},
		{"production scale 3 to 1", stepInput("production", scale("shop", 1)), remediation.EffectDeny, "", 0, "less than 1/2 in one step"},
		{"production scale to 0", stepInput("production", scale("shop", 0)), remediation.EffectDeny, "", 0, "below the minimum of 1"},
		{"production scale without state", withoutState(stepInput("production", scale("shop", 7))), remediation.EffectAllow, remediation.RiskMedium, 0, "skipped the replica-change limit: no cluster state"},
		{"production restart", stepInput("production", remediation.Step{Action: remediation.ActionRolloutRestart, Target: remediation.Target{Namespace: "shop", Kind: remediation.KindDeployment, Name: "checkout"}, Justification: why}), remediation.EffectAllow, remediation.RiskMedium, 0, ""},
		{"production set-image", stepInput("production", setImage("registry.example/checkout:v1.6.0")), remediation.EffectCosign, remediation.RiskHigh, 1, "needs 1 co-signer from oncall-sre"},
		{"production delete-pod", stepInput("production", podStep(remediation.ActionDeletePod)), remediation.EffectCosign, remediation.RiskCritical, 2, "needs 2 co-signers"},
		{"production quarantine-pod", stepInput("production", podStep(remediation.ActionQuarantinePod)), remediation.EffectCosign, remediation.RiskCritical, 2, ""},
		{"fourth quarantine in a namespace", withHistory(stepInput("production", podStep(remediation.ActionQuarantinePod)), History{NamespaceQuarantines: 3}), remediation.EffectDeny, "", 0, "already quarantined"},
		{"human cordons a node", human(stepInput("production", remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n-17"}, Justification: why})), remediation.EffectCosign, remediation.RiskHigh, 1, ""},
		{"agent cordons a node", stepInput("production", remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n-17"}, Justification: why}), remediation.EffectDeny, "", 0, "may not act on Nodes"},
		{"staging cordon", human(stepInput("staging", remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n-17"}, Justification: why})), remediation.EffectDeny, "", 0, "is not permitted in staging"},
		{"kube-system", human(stepInput("staging", scale("kube-system", 4))), remediation.EffectDeny, "", 0, `namespace "kube-system" is protected`},
		{"short justification", stepInput("staging", short), remediation.EffectDeny, "", 0, "the justification has 10 characters"},
		{"agent out of scope", stepInput("staging", scale("billing", 4)), remediation.EffectDeny, "", 0, `agent "sre-agent" may not act in namespace "billing"`},
		{"human out of any scope", human(stepInput("staging", scale("billing", 4))), remediation.EffectAllow, remediation.RiskLow, 0, ""},
		{"unknown agent", agent(stepInput("staging", scale("shop", 4)), "rogue-bot"), remediation.EffectDeny, "", 0, `agent "rogue-bot" is unknown`},
		{"unknown environment", stepInput("dev", scale("shop", 4)), remediation.EffectDeny, remediation.RiskCritical, 0, `environment "dev" has no policy`},
		{"busy agent", withHistory(stepInput("staging", scale("shop", 4)), History{RequesterActions: 11}), remediation.EffectCosign, remediation.RiskHigh, 1, "a human must co-sign"},
		{"agent denied too often", withHistory(stepInput("staging", scale("shop", 4)), History{RequesterDenials: 6}), remediation.EffectDeny, "", 0, "steps denied"},
		{"flapping target", withHistory(stepInput("staging", scale("shop", 4)), History{TargetActions: 4}), remediation.EffectCosign, remediation.RiskHigh, 1, "not flapping"},
		{"delete-pod by a busy agent", withHistory(stepInput("production", podStep(remediation.ActionDeletePod)), History{RequesterActions: 11}), remediation.EffectCosign, remediation.RiskCritical, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkDecision(t, e, tc) })
	}
}

func TestDefaultBundleFreeze(t *testing.T) {
	// The default bundle with a freeze in its data.
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := WriteDefaultBundle(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, DataFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]map[string]map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["reins"]["config"]["freezes"] = []map[string]string{{
		"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "reason": "quarterly close",
	}}
	raw, _ = json.MarshalIndent(data, "", "  ")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{Dir: dir})

	after := stepInput("production", scale("shop", 4))
	after.Now = time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []decisionCase{
		{"scale during the freeze", stepInput("production", scale("shop", 4)), remediation.EffectDeny, "", 0, "change freeze from 2026-06-01T00:00:00Z to 2026-06-02T00:00:00Z: quarterly close"},
		{"new image during the freeze", stepInput("production", setImage("registry.example/checkout:v1.6.0")), remediation.EffectDeny, "", 0, "change freeze"},
		{"rollback during the freeze", stepInput("production", setImage("registry.example/checkout:v1.4.2")), remediation.EffectCosign, remediation.RiskHigh, 1, "allowed during the change freeze as a rollback"},
		{"after the freeze", after, remediation.EffectAllow, remediation.RiskMedium, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkDecision(t, e, tc) })
	}
}
