package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// updateGolden rewrites testdata/golden/decisions.json from the default
// bundle as it is: go test ./policies/ -run TestDefaultBundleGolden -update.
// Do it only for a change of the policy's decisions that is meant, and review
// the diff of the file.
var updateGolden = flag.Bool("update", false, "rewrite testdata/golden/decisions.json from the default bundle")

var goldenFile = filepath.Join("testdata", "golden", "decisions.json")

// goldenCase is one decision of the default bundle: on input, with the
// default data changed as the data variant says.
type goldenCase struct {
	Data  string         `json:"data"`
	Input map[string]any `json:"input"`
	// Decision is the decision rule's value, or "error" when the evaluation
	// fails (the engine then denies by default).
	Decision json.RawMessage `json:"decision"`
}

// goldenData are the variants of the default data the table is decided
// with, each changing data.reins.config so that more of the rules act.
var goldenData = map[string]func(cfg map[string]any){
	"default": func(map[string]any) {},
	"freeze": func(cfg map[string]any) {
		cfg["freezes"] = []any{map[string]any{"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "reason": "quarterly close"}}
	},
	"production freeze": func(cfg map[string]any) {
		cfg["freezes"] = []any{
			map[string]any{"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "environments": []any{"production"}},
			map[string]any{"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "reason": "new year"},
		}
	},
	"agents with nodes": func(cfg map[string]any) {
		agents := cfg["agents"].(map[string]any)
		agents["sre-agent"].(map[string]any)["nodes"] = true
		agents["rogue-bot"] = map[string]any{}
	},
	"odd settings": func(cfg map[string]any) {
		envs := cfg["environments"].(map[string]any)
		envs["staging"].(map[string]any)["actions"].(map[string]any)["kubernetes.scale"] = map[string]any{"effect": "deny"}
		prod := envs["production"].(map[string]any)
		delete(prod, "risk")
		delete(prod["cosign"].(map[string]any), "escalation_group")
		prod["actions"].(map[string]any)["kubernetes.uncordon"] = map[string]any{"effect": "cosign", "approvers": 0}
		cfg["rate_limits"].(map[string]any)["cosign_approvers"] = 2
	},
}

// goldenRules names the sentences of the default bundle, so that the table
// can be checked to hold every one: each reason of a decision matches one.
var goldenRules = []struct {
	id    string
	match func(reason string) bool
}{
	{"allowed", contains(" is allowed in ")},
	{"unknown environment", contains(" has no policy: reins acts only in ")},
	{"action not listed", contains(" is not permitted in ")},
	{"action forbidden", contains(" is forbidden in ")},
	{"action co-signers", func(r string) bool { return strings.Contains(r, " needs ") && strings.Contains(r, " co-signer") }},
	{"scale without replicas", contains("needs params.replicas")},
	{"below minimum", contains(" is below the minimum of ")},
	{"more than factor", contains(" in one step: scale in steps of at most ")},
	{"less than factor", contains(" in one step: scale down in steps of at most 1/")},
	{"from zero", contains(" replicas is too far in one step: from 0 ")},
	{"replica limit skipped, no state", contains("skipped the replica-change limit: no cluster state")},
	{"replica limit skipped, no replicas", contains("skipped the replica-change limit: the cluster state has no current replica count")},
	{"quarantine limit", contains(" were already quarantined in the last ")},
	{"quarantine limit skipped", contains("skipped the quarantine limit per namespace")},
	{"now missing", contains("input.now is missing")},
	{"freeze", contains("change freeze from ")},
	{"freeze rollback", contains("allowed during the change freeze as a rollback")},
	{"freeze rollback unknown", contains("could not check for a rollback")},
	{"justification", contains("the justification has ")},
	{"protected namespace", contains(" is protected: reins never changes it")},
	{"requester kind", contains(` is neither "agent" nor "human"`)},
	{"unknown agent", contains(" is unknown: list it and its scope")},
	{"agent scope", contains(" may not act in namespace ")},
	{"agent nodes", contains(" may not act on Nodes such as ")},
	{"agent denials", contains(" steps denied in the last ")},
	{"agent actions deny", contains("it is denied until the window passes")},
	{"agent actions co-sign", func(r string) bool { return strings.HasSuffix(r, "more than 10: a human must co-sign") }},
	{"flapping", contains("a human must co-sign that this is not flapping")},
	{"rate limits skipped", contains("skipped the rate limits")},
}

func contains(s string) func(string) bool {
	return func(r string) bool { return strings.Contains(r, s) }
}

// ruleOf names the sentence r; "" when none matches.
func ruleOf(r string) string {
	for _, g := range goldenRules {
		if g.match(r) {
			return g.id
		}
	}
	return ""
}

// goldenQuery prepares the default bundle's decision with the data variant.
func goldenQuery(t *testing.T, variant string) rego.PreparedEvalQuery {
	t.Helper()
	files, err := readEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	for i, f := range files {
		if f.Name != DataFile {
			continue
		}
		if err := json.Unmarshal(f.Data, &data); err != nil {
			t.Fatal(err)
		}
		goldenData[variant](data["reins"].(map[string]any)["config"].(map[string]any))
		raw, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		files[i].Data = raw
	}
	l, err := parseBundle("", files)
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.compile(false)
	if err != nil {
		t.Fatal(err)
	}
	// Not l.prepare: some variants hold settings that config_problems
	// refuses, as the Rego tests do with `with`.
	q, err := l.decisionQuery(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// goldenDecide is the decision of q on input, as goldenCase.Decision holds it.
func goldenDecide(t *testing.T, q rego.PreparedEvalQuery, input map[string]any) json.RawMessage {
	t.Helper()
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := q.Eval(context.Background(), rego.EvalParsedInput(v))
	if err != nil {
		return json.RawMessage(`"error"`)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return json.RawMessage(`"undefined"`)
	}
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// goldenInput is a pseudo-random input: mostly what Decide builds, with
// fields left out or of the wrong type now and then.
func goldenInput(r *rand.Rand) map[string]any {
	pick := func(xs ...any) any { return xs[r.IntN(len(xs))] }
	absent := &struct{}{}
	set := func(m map[string]any, k string, v any) {
		if v != absent {
			m[k] = v
		}
	}
	in := map[string]any{}
	set(in, "environment", pick("staging", "production", "production", "dev", "", absent))
	step := map[string]any{}
	set(step, "action", pick("kubernetes.scale", "kubernetes.scale", "kubernetes.rollout-restart", "kubernetes.set-image",
		"kubernetes.cordon", "kubernetes.uncordon", "kubernetes.delete-pod", "kubernetes.quarantine-pod", "kubernetes.explode", absent))
	switch r.IntN(7) {
	case 0:
		step["target"] = map[string]any{"kind": "Node", "name": "n-17"}
	case 1:
		step["target"] = map[string]any{"namespace": pick("kube-system", "vault", "billing", "payments"), "kind": "Deployment", "name": "checkout"}
	case 2:
		step["target"] = map[string]any{"namespace": "shop", "kind": "Pod", "name": "checkout-7d9f-x2"}
	case 3:
	default:
		step["target"] = map[string]any{"cluster": "prod-eu-1", "namespace": "shop", "kind": "Deployment", "name": "checkout"}
	}
	params := map[string]any{}
	set(params, "replicas", pick(0, 1, 2, 3, 4, 6, 7, 8, 30, absent, "3"))
	set(params, "image", pick("registry.example/checkout:v1.4.2", "registry.example/checkout:v1.6.0", absent))
	if r.IntN(8) > 0 {
		step["params"] = params
	}
	set(step, "justification", pick("checkout p99 latency is above its SLO for 10 minutes", "it is slow", "   padded but short   ",
		"1234567890123456789", "12345678901234567890", "", absent))
	if r.IntN(15) > 0 {
		in["step"] = step
	}
	req := map[string]any{}
	set(req, "kind", pick("agent", "agent", "human", "robot", absent))
	set(req, "name", pick("sre-agent", "sre-agent", "rogue-bot", "alice", absent))
	in["requester"] = req
	set(in, "now", pick("2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z", "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z",
		"2026-06-02T01:30:00+02:00", "2026-05-31T23:59:59Z", absent, 1234))
	switch r.IntN(5) {
	case 0:
	case 1:
		in["state"] = map[string]any{"exists": true}
	default:
		in["state"] = map[string]any{"exists": true, "replicas": pick(0, 1, 3, 4, 5), "previous_images": []any{"registry.example/checkout:v1.4.2"}}
	}
	if r.IntN(5) > 0 {
		in["history"] = map[string]any{
			"requester_actions":     pick(0, 2, 10, 11, 30, 31),
			"requester_denials":     pick(0, 0, 5, 6),
			"target_actions":        pick(0, 1, 3, 4),
			"namespace_quarantines": pick(0, 2, 3),
			"window_seconds":        3600,
		}
	}
	if r.IntN(6) == 0 {
		// A field of the wrong type: the policy must deny, or fail (and so deny).
		switch r.IntN(6) {
		case 0:
			in["state"] = pick("x", false)
		case 1:
			step["target"] = "x"
		case 2:
			in["history"] = "x"
		case 3:
			in["requester"] = "x"
		case 4:
			in["environment"] = 3
		case 5:
			step["params"] = "x"
		}
	}
	return in
}

// goldenKeys are what makes a decision worth keeping in the table: for each
// rule that gave one of its reasons, the rule with the decision's effect, risk
// and approvers.
func goldenKeys(decision json.RawMessage) []string {
	var d struct {
		Effect, Risk string
		Approvers    int
		Reasons      []string
	}
	if err := json.Unmarshal(decision, &d); err != nil {
		return []string{string(decision)} // "error"
	}
	outcome := fmt.Sprintf("%s/%s/%d", d.Effect, d.Risk, d.Approvers)
	keys := []string{outcome}
	for _, r := range d.Reasons {
		keys = append(keys, outcome+" "+ruleOf(r))
	}
	return keys
}

// writeGolden builds the table: for each data variant, those of 6000
// pseudo-random inputs that bring a new key (goldenKeys).
func writeGolden(t *testing.T) {
	var cases []goldenCase
	for _, variant := range slices.Sorted(maps.Keys(goldenData)) {
		q := goldenQuery(t, variant)
		r := rand.New(rand.NewPCG(3, 7))
		seen := map[string]bool{}
		for range 6000 {
			in := goldenInput(r)
			d := goldenDecide(t, q, in)
			keep := false
			for _, k := range goldenKeys(d) {
				if !seen[k] {
					seen[k] = true
					keep = true
				}
			}
			if keep {
				cases = append(cases, goldenCase{Data: variant, Input: in, Decision: d})
			}
		}
	}
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, c := range cases {
		line, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		if i < len(cases)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("]\n")
	if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d decisions to %s", len(cases), goldenFile)
}

// TestDefaultBundleGolden decides a table of inputs that together fire every
// rule of the default bundle, alone and in combination, with several
// variants of its data, and checks that every decision (effect, risk,
// approvers, co-sign routing, and every reason, in order) is the one
// recorded in testdata/golden/decisions.json. It guards rewrites of the
// bundle for speed: they must not change a single decision.
func TestDefaultBundleGolden(t *testing.T) {
	if *updateGolden {
		writeGolden(t)
	}
	raw, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v; write it with -update", err)
	}
	var cases []goldenCase
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&cases); err != nil {
		t.Fatal(err)
	}

	// The table covers every rule, and every effect.
	covered := map[string]bool{}
	for _, c := range cases {
		var d struct {
			Effect  string
			Reasons []string
		}
		if err := json.Unmarshal(c.Decision, &d); err != nil {
			covered["error"] = true
			continue
		}
		covered["effect "+d.Effect] = true
		for _, r := range d.Reasons {
			id := ruleOf(r)
			if id == "" {
				t.Errorf("reason %q matches no rule of goldenRules; name it there", r)
			}
			covered[id] = true
		}
	}
	for _, want := range []string{"effect allow", "effect cosign", "effect deny", "error"} {
		if !covered[want] {
			t.Errorf("the table has no decision with %s", want)
		}
	}
	for _, g := range goldenRules {
		if !covered[g.id] {
			t.Errorf("the table has no decision with a reason of rule %q", g.id)
		}
	}

	queries := map[string]rego.PreparedEvalQuery{}
	for i, c := range cases {
		q, ok := queries[c.Data]
		if !ok {
			if goldenData[c.Data] == nil {
				t.Fatalf("case %d: unknown data variant %q", i, c.Data)
			}
			q = goldenQuery(t, c.Data)
			queries[c.Data] = q
		}
		got := goldenDecide(t, q, c.Input)
		if !jsonEqual(t, got, c.Decision) {
			in, _ := json.Marshal(c.Input)
			t.Errorf("case %d (data %q), input %s:\n got %s\nwant %s", i, c.Data, in, got, c.Decision)
		}
	}
	t.Logf("%d decisions over %d data variants", len(cases), len(queries))
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
