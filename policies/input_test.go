package policies

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/reins-dev/reins/remediation"
)

// jsonValue is the input as a policy would see it through encoding/json.
func jsonValue(t *testing.T, in Input) ast.Value {
	t.Helper()
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return val
}

func TestInputValueMatchesJSON(t *testing.T) {
	full := TypicalInput()
	full.Plan.ID = "rem-1"
	full.Plan.DryRun = true
	full.Plan.Steps = append(full.Plan.Steps,
		remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n-17"}, Justification: "disk pressure on n-17"},
		remediation.Step{Action: remediation.ActionSetImage, Target: remediation.Target{Cluster: "c", Namespace: "shop", Kind: remediation.KindDeployment, Name: "checkout"},
			Params: remediation.Params{Container: "app", Image: "registry.example/checkout:v1.4.2"}, Justification: "roll back"})
	full.State.RestartedAt = "2026-06-01T11:00:00Z"
	full.State.Unschedulable = ptr(false)
	full.State.Quarantine = "true"
	full.State.QuarantinePolicy = true
	full.State.Phase = "Running"

	zeroReplicas := TypicalInput()
	zeroReplicas.Step.Params.Replicas = ptr(int32(0))
	zeroReplicas.State = &remediation.Snapshot{Labels: map[string]string{}}
	zeroReplicas.History = &History{}

	other := TypicalInput()
	other.Index = 1 // the step is not the plan's step 1: no sharing
	other.Now = time.Date(2026, 6, 1, 14, 30, 0, 123, time.FixedZone("CEST", 2*3600))

	for name, in := range map[string]Input{
		"typical":       TypicalInput(),
		"full":          full,
		"zero replicas": zeroReplicas,
		"other index":   other,
		"zero":          {},
		"no state":      NewInput(TypicalInput().Plan, 0, testNow, nil, nil),
		"out of range":  NewInput(TypicalInput().Plan, 7, testNow, nil, nil),
	} {
		t.Run(name, func(t *testing.T) {
			got, want := in.value(), jsonValue(t, in)
			if got.Compare(want) != 0 {
				t.Fatalf("AST input differs from its JSON form:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestNewInput(t *testing.T) {
	in := TypicalInput()
	if in.Step != in.Plan.Steps[0] || in.Requester != in.Plan.Requester || in.Environment != in.Plan.Environment {
		t.Fatalf("NewInput did not take step, requester and environment from the plan: %+v", in)
	}
	if out := NewInput(in.Plan, 3, testNow, nil, nil); out.Step.Action != "" {
		t.Fatalf("index out of range: step %+v, want empty", out.Step)
	}
}
