package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

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

// fullInput is an input with every field set (TestFullInputSetsEveryField
// keeps it so), for the conversion to show each one.
func fullInput() Input {
	full := TypicalInput()
	full.Plan.ID = "rem-1"
	full.Plan.DryRun = true
	full.Plan.Requester.Owner = "alice"
	full.Plan.Steps = append(full.Plan.Steps,
		remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n-17"}, Justification: "disk pressure on n-17"},
		remediation.Step{Action: remediation.ActionSetImage, Target: remediation.Target{Cluster: "c", Namespace: "shop", Kind: remediation.KindDeployment, Name: "checkout"},
			Params: remediation.Params{Container: "app", Image: "registry.example/checkout:v1.4.2"}, Justification: "roll back"})
	full.Requester = full.Plan.Requester
	full.Step.Params.Container = "app"
	full.Step.Params.Image = "registry.example/checkout:v1.5.1"
	full.State.RestartedAt = "2026-06-01T11:00:00Z"
	full.State.Unschedulable = ptr(false)
	full.State.Quarantine = "true"
	full.State.QuarantinePolicy = true
	full.State.Phase = "Running"
	full.History.RequesterDenials = 1
	full.History.NamespaceQuarantines = 1
	return full
}

// TestFullInputSetsEveryField fails when a type the input is built from by
// hand gains a field: set it in fullInput, and build it in input.go.
func TestFullInputSetsEveryField(t *testing.T) {
	full := fullInput()
	// The plan is converted through encoding/json: it needs no check.
	for name, v := range map[string]any{
		"step": full.Step, "requester": full.Requester, "state": *full.State, "history": *full.History,
	} {
		assertAllSet(t, name, reflect.ValueOf(v))
	}
}

func assertAllSet(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("fullInput leaves %s unset", path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			assertAllSet(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Pointer:
		// Set is enough: *bool false is a value.
		if v.Elem().Kind() == reflect.Struct {
			assertAllSet(t, path, v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			assertAllSet(t, fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	}
}

func TestInputValueMatchesJSON(t *testing.T) {
	full := fullInput()

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

// TestInputValueReadsLikeJSON reads the lazy parts of the input (the plan,
// and the target's state) the way a policy does, field by field: the values
// are those of the JSON form.
func TestInputValueReadsLikeJSON(t *testing.T) {
	const module = `package t

fields := [
	input.plan.steps[0].params,
	input.plan.incident,
	input.state.images,
	input.state.labels,
	input.state.previous_images,
	input.state.uid,
	input.state.exists,
	input.state.replicas,
	input.state.unschedulable,
	object.keys(input.state),
]`
	q, err := rego.New(rego.Query("data.t.fields"), rego.Module("t.rego", module)).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	read := func(v ast.Value) string {
		rs, err := q.Eval(context.Background(), rego.EvalParsedInput(v))
		if err != nil || len(rs) != 1 {
			t.Fatalf("eval: %v, %d results", err, len(rs))
		}
		raw, err := json.Marshal(rs[0].Expressions[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	in := fullInput()
	if got, want := read(in.value()), read(jsonValue(t, in)); got != want {
		t.Fatalf("policy reads\n %s\nwant\n %s", got, want)
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
