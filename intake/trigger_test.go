package intake

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/remediation"
)

const triggersYAML = `
triggers:
  - name: replicas-mismatch
    owner: oncall-lead
    match:
      kind: alertmanager
      type: KubeDeploymentReplicasMismatch
      labels: ['severity=critical', 'namespace=~"shop-.*"']
    playbook:
      environment: production
      explanation: '{{ .annotations.summary }} ({{ .event.type }})'
      steps:
        - action: kubernetes.scale
          target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ .labels.deployment | lower }}'}
          params: {replicas: 3}
          justification: 'scale {{ .labels.deployment }} back to 3 replicas'
  - name: any-cloudevent
    match:
      kind: cloudevent
      type: '=~"com\.example\..*"'
      labels: ['team!=""', 'env!~"dev|test"']
    playbook:
      environment: staging
      explanation: 'restart {{ get .labels "app.kubernetes.io/name" }}'
      dry_run: true
      steps:
        - action: kubernetes.rollout-restart
          target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ get .labels "app.kubernetes.io/name" }}'}
          justification: 'event {{ .event.id }} from {{ .event.source }}'
`

func compileYAML(t testing.TB, doc string) *Triggers {
	t.Helper()
	var f struct {
		Triggers []TriggerConfig `json:"triggers"`
	}
	if err := yaml.UnmarshalStrict([]byte(doc), &f); err != nil {
		t.Fatal(err)
	}
	ts, err := Compile(f.Triggers)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func alert(labels map[string]string) Event {
	return Event{Kind: KindAlertmanager, Via: ViaHTTP, Type: labels["alertname"], Status: StatusFiring, Fingerprint: "c7a5d9e6f0b1a2c3",
		Labels: labels, Annotations: map[string]string{"summary": "checkout is short of replicas"}}
}

func TestTriggerMatch(t *testing.T) {
	ts := compileYAML(t, triggersYAML)
	base := map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "severity": "critical", "namespace": "shop-eu", "deployment": "checkout"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"all hold", alert(base), "replicas-mismatch"},
		{"other severity", alert(with("severity", "warning")), ""},
		{"namespace outside the regex", alert(with("namespace", "staging")), ""},
		{"regex anchored at both ends", alert(with("namespace", "x-shop-eu")), ""},
		{"other alertname", alert(with("alertname", "KubePodCrashLooping")), ""},
		{"no severity label", alert(with("severity", "")), ""},
		{"cloudevent with team", Event{Kind: KindCloudEvent, Type: "com.example.x", Labels: map[string]string{"team": "a"}}, "any-cloudevent"},
		{"cloudevent without team", Event{Kind: KindCloudEvent, Type: "com.example.x", Labels: map[string]string{}}, ""},
		{"cloudevent in dev", Event{Kind: KindCloudEvent, Type: "com.example.x", Labels: map[string]string{"team": "a", "env": "dev"}}, ""},
		{"cloudevent of another type", Event{Kind: KindCloudEvent, Type: "org.other.x", Labels: map[string]string{"team": "a"}}, ""},
		{"kind decides", Event{Kind: KindCloudEvent, Type: "KubeDeploymentReplicasMismatch", Labels: base}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if tr := ts.Match(tc.ev); tr != nil {
				got = tr.Name()
			}
			if got != tc.want {
				t.Errorf("matched %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFirstTriggerWins(t *testing.T) {
	ts := compileYAML(t, `
triggers:
  - name: first
    match: {labels: ['a=1']}
    playbook: {environment: e, explanation: x, steps: [{action: kubernetes.cordon, target: {kind: Node, name: node-1}, justification: j}]}
  - name: second
    match: {}
    playbook: {environment: e, explanation: x, steps: [{action: kubernetes.cordon, target: {kind: Node, name: node-1}, justification: j}]}
`)
	if got := ts.Match(Event{Labels: map[string]string{"a": "1"}}).Name(); got != "first" {
		t.Errorf("matched %s, want the first trigger in order", got)
	}
	if got := ts.Match(Event{Labels: map[string]string{"a": "2"}}).Name(); got != "second" {
		t.Errorf("matched %s, want the catch-all second", got)
	}
}

func TestTriggerPlan(t *testing.T) {
	ts := compileYAML(t, triggersYAML)
	ev := alert(map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "severity": "critical", "namespace": "shop-eu", "deployment": "Checkout"})
	ev.URL = "http://prometheus/graph"
	tr := ts.Match(ev)
	p, err := tr.Plan(ev)
	if err != nil {
		t.Fatal(err)
	}
	if p.Incident != (remediation.Incident{Source: "replicas-mismatch", Fingerprint: "c7a5d9e6f0b1a2c3", URL: "http://prometheus/graph"}) {
		t.Errorf("incident %+v", p.Incident)
	}
	if p.Requester != (remediation.Requester{Kind: remediation.RequesterAgent, Name: "trigger:replicas-mismatch", Owner: "oncall-lead"}) {
		t.Errorf("requester %+v", p.Requester)
	}
	s := p.Steps[0]
	if p.Environment != "production" || p.Explanation != "checkout is short of replicas (KubeDeploymentReplicasMismatch)" ||
		s.Target.Namespace != "shop-eu" || s.Target.Name != "checkout" || *s.Params.Replicas != 3 || s.Justification != "scale Checkout back to 3 replicas" {
		t.Errorf("plan %+v", p)
	}
	if id := p.WorkflowID(); !strings.HasPrefix(id, "reins-replicas-mismatch-c7a5d9e6f0b1a2c3-") || id != tr.WorkflowID(ev) {
		t.Errorf("workflow ID %s (trigger says %s)", id, tr.WorkflowID(ev))
	}
}

// A label's value is a value: quotes, braces and JSON in it never become
// plan structure or template code.
func TestTriggerPlanNoInjection(t *testing.T) {
	ts := compileYAML(t, triggersYAML)
	evil := `x", "steps": [], "dry_run": false, "y": "{{ .labels.namespace }}`
	ev := alert(map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "severity": "critical", "namespace": "shop-eu", "deployment": "checkout"})
	ev.Annotations["summary"] = evil
	p, err := ts.Match(ev).Plan(ev)
	if err != nil {
		t.Fatal(err)
	}
	if p.Explanation != evil+" (KubeDeploymentReplicasMismatch)" || len(p.Steps) != 1 {
		t.Errorf("explanation %q, %d steps", p.Explanation, len(p.Steps))
	}
	// In a field with rules, it is refused by the plan's validation.
	ev.Labels["deployment"] = `checkout", "kind": "Node`
	_, err = ts.Match(ev).Plan(ev)
	var pe *PlaybookError
	if !errors.As(err, &pe) || pe.Errors[0].Field != "playbook.steps[0].target.name" {
		t.Errorf("got %v, want a PlaybookError on playbook.steps[0].target.name", err)
	}
}

func TestTriggerPlanMissingLabel(t *testing.T) {
	ts := compileYAML(t, triggersYAML)
	ev := alert(map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "severity": "critical", "namespace": "shop-eu"})
	_, err := ts.Match(ev).Plan(ev)
	var pe *PlaybookError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *PlaybookError", err)
	}
	if pe.Trigger != "replicas-mismatch" || pe.Errors[0].Field != "playbook.steps[0].justification" || pe.Missing != ".labels.deployment" ||
		!strings.Contains(err.Error(), `no label "deployment"`) || !strings.Contains(err.Error(), `"replicas-mismatch"`) {
		t.Errorf("error %v (missing %q, fields %v)", err, pe.Missing, pe.Errors)
	}
	ce := Event{Kind: KindCloudEvent, Type: "com.example.x", ID: "1", Source: "s", Fingerprint: "f", Labels: map[string]string{"team": "a", "namespace": "ns"}}
	_, err = ts.Match(ce).Plan(ce)
	if !errors.As(err, &pe) || pe.Missing != `get .labels "app.kubernetes.io/name"` || !strings.Contains(err.Error(), `no label "app.kubernetes.io/name"`) {
		t.Errorf("get of a missing label: %v", err)
	}
	ce.Labels["app.kubernetes.io/name"] = "cart"
	p, err := ts.Match(ce).Plan(ce)
	if err != nil || p.Steps[0].Target.Name != "cart" || !p.DryRun || p.Steps[0].Justification != "event 1 from s" {
		t.Errorf("plan %+v, %v", p, err)
	}
}

func TestCompileRefuses(t *testing.T) {
	step := `{"action":"kubernetes.cordon","target":{"kind":"Node","name":"n"},"justification":"j"}`
	good := `{"environment":"e","explanation":"x","steps":[` + step + `]}`
	for _, tc := range []struct {
		name  string
		cfg   TriggerConfig
		field string
	}{
		{"bad name", TriggerConfig{Name: "Bad_Name", Playbook: json.RawMessage(good)}, "triggers[0].name"},
		{"no playbook", TriggerConfig{Name: "a"}, "triggers[0].playbook"},
		{"playbook not an object", TriggerConfig{Name: "a", Playbook: json.RawMessage(`[]`)}, "triggers[0].playbook"},
		{"playbook sets the incident", TriggerConfig{Name: "a", Playbook: json.RawMessage(`{"incident":{"source":"x"},"environment":"e","explanation":"x","steps":[` + step + `]}`)}, "triggers[0].playbook.incident"},
		{"playbook sets the requester", TriggerConfig{Name: "a", Playbook: json.RawMessage(`{"requester":{"name":"root"},"environment":"e","explanation":"x","steps":[` + step + `]}`)}, "triggers[0].playbook.requester"},
		{"unknown plan field", TriggerConfig{Name: "a", Playbook: json.RawMessage(`{"enviroment":"e"}`)}, "triggers[0].playbook.enviroment"},
		{"replicas as a template", TriggerConfig{Name: "a", Playbook: json.RawMessage(`{"steps":[{"params":{"replicas":"{{ .labels.n }}"}}]}`)}, "triggers[0].playbook.steps[0].params.replicas"},
		{"bad template", TriggerConfig{Name: "a", Playbook: json.RawMessage(`{"environment":"e","explanation":"{{ .labels.x ","steps":[` + step + `]}`)}, "triggers[0].playbook.explanation"},
		{"bad kind", TriggerConfig{Name: "a", Match: MatchConfig{Kind: "email"}, Playbook: json.RawMessage(good)}, "triggers[0].match.kind"},
		{"matcher without operator", TriggerConfig{Name: "a", Match: MatchConfig{Labels: []string{"severity"}}, Playbook: json.RawMessage(good)}, "triggers[0].match.labels[0]"},
		{"matcher with a bad operator", TriggerConfig{Name: "a", Match: MatchConfig{Labels: []string{"severity!critical"}}, Playbook: json.RawMessage(good)}, "triggers[0].match.labels[0]"},
		{"matcher with a bad name", TriggerConfig{Name: "a", Match: MatchConfig{Labels: []string{"9x=1"}}, Playbook: json.RawMessage(good)}, "triggers[0].match.labels[0]"},
		{"bad regex", TriggerConfig{Name: "a", Match: MatchConfig{Labels: []string{`ns=~"shop-("`}}, Playbook: json.RawMessage(good)}, "triggers[0].match.labels[0]"},
		{"bad quoting", TriggerConfig{Name: "a", Match: MatchConfig{Labels: []string{`ns="shop" x`}}, Playbook: json.RawMessage(good)}, "triggers[0].match.labels[0]"},
		{"bad type regex", TriggerConfig{Name: "a", Match: MatchConfig{Type: `=~"(("`}, Playbook: json.RawMessage(good)}, "triggers[0].match.type"},
		{"bad owner", TriggerConfig{Name: "a", Owner: "a b", Playbook: json.RawMessage(good)}, "triggers[0].owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]TriggerConfig{tc.cfg})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			found := false
			for _, fe := range ce.Errors {
				found = found || fe.Field == tc.field
			}
			if !found {
				t.Errorf("errors %v, want one on %s", ce.Errors, tc.field)
			}
		})
	}
	_, err := Compile([]TriggerConfig{{Name: "a", Playbook: json.RawMessage(good)}, {Name: "a", Playbook: json.RawMessage(good)}})
	if err == nil || !strings.Contains(err.Error(), "triggers[1].name") {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestLoadTriggersFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "triggers.yaml")
	if err := os.WriteFile(path, []byte(triggersYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs, err := LoadTriggersFile(path)
	if err != nil || len(cfgs) != 2 || cfgs[1].Match.Type != `=~"com\.example\..*"` {
		t.Fatalf("%+v, %v", cfgs, err)
	}
	if err := os.WriteFile(path, []byte("triggers:\n  - name: a\n    matc: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTriggersFile(path); err == nil || !strings.Contains(err.Error(), "matc") {
		t.Errorf("an unknown field: %v", err)
	}
	if _, err := LoadTriggersFile(filepath.Join(dir, "none.yaml")); err == nil {
		t.Error("a missing file: no error")
	}
}

func FuzzFillTemplate(f *testing.F) {
	f.Add("namespace", "shop-eu", "deployment", "checkout", "{{ .annotations.summary }}")
	f.Add("namespace", `x", "steps": []`, "deployment", "{{ .labels.namespace }}", `{{ printf "%q" .labels.deployment }}`)
	f.Add("", "", "deployment", "\x00", "{{ .labels.nope }}")
	f.Add("namespace", "a", "deployment", "b", `{{ range $k, $v := .labels }}{{ $k }}{{ end }}`)
	f.Add("namespace", "a", "deployment", "b", `{{ printf "%099999999d" 1 }}`)
	ts := compileYAML(f, `
triggers:
  - name: fuzz
    playbook:
      environment: production
      explanation: '{{ .annotations.summary }}'
      steps:
        - action: kubernetes.scale
          target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ .labels.deployment }}'}
          params: {replicas: 2}
          justification: '{{ .event.fingerprint }}'
`)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, summary string) {
		// The decoders refuse labels and annotations that are not UTF-8, so
		// events only ever carry valid text: map every input to such text.
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		k1, v1, k2, v2, summary = valid(k1), valid(v1), valid(k2), valid(v2), valid(summary)
		ev := Event{Kind: KindAlertmanager, Status: StatusFiring, Fingerprint: "fp1",
			Labels: map[string]string{k1: v1, k2: v2}, Annotations: map[string]string{"summary": summary}}
		tr := ts.Match(ev)
		p, err := tr.Plan(ev)
		if err != nil {
			var pe *PlaybookError
			if !errors.As(err, &pe) || pe.Trigger != "fuzz" || len(pe.Errors) == 0 || !strings.HasPrefix(pe.Errors[0].Field, "playbook") && pe.Errors[0].Field != "event.fingerprint" {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("a plan that does not validate: %v", err)
		}
		// Substitution never changes the plan's structure.
		if len(p.Steps) != 1 || *p.Steps[0].Params.Replicas != 2 || p.Steps[0].Action != remediation.ActionScale || p.Explanation != summary ||
			p.Steps[0].Target.Namespace != ev.Labels["namespace"] || p.Steps[0].Target.Name != ev.Labels["deployment"] || p.Requester.Name != "trigger:fuzz" {
			t.Fatalf("plan %+v from labels %v", p, ev.Labels)
		}
	})
}
