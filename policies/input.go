package policies

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/reins-dev/reins/remediation"
)

// Input is what the policy decides on: one step of a plan, in context. Its JSON
// form is the Rego document input (see the package documentation); Decide
// hands it to the policy without a JSON round trip, in exactly that form.
type Input struct {
	// Plan is the whole plan the step belongs to.
	Plan remediation.Plan `json:"plan"`
	// Step is the step to decide on, and Index its position in Plan.Steps.
	Step  remediation.Step `json:"step"`
	Index int              `json:"index"`
	// Requester is who proposed the plan, as authenticated by the door it came through.
	Requester remediation.Requester `json:"requester"`
	// Environment is where the plan acts, e.g. "production".
	Environment string `json:"environment"`
	// Now is when the decision is made; the policy reads it as an RFC 3339
	// string. Zero: Decide uses the current time.
	Now time.Time `json:"now"`
	// State is the target as it is in the cluster before the step. Nil (the
	// field is absent): rules that need it are skipped, and the decision's
	// reasons name them.
	State *remediation.Snapshot `json:"state,omitempty"`
	// History counts recent activity. Nil (the field is absent): the rate
	// limits are skipped, and the decision's reasons say so.
	History *History `json:"history,omitempty"`
}

// History counts what happened in the WindowSeconds before the step, as
// recorded by reins (the audit trail).
type History struct {
	// RequesterActions is how many steps the requester ran.
	RequesterActions int `json:"requester_actions"`
	// RequesterDenials is how many of the requester's steps were denied, by
	// policy or by a human.
	RequesterDenials int `json:"requester_denials"`
	// TargetActions is how many steps changed the step's target.
	TargetActions int `json:"target_actions"`
	// NamespaceQuarantines is how many pods of the target's namespace were quarantined.
	NamespaceQuarantines int `json:"namespace_quarantines"`
	// WindowSeconds is how far back the counts go; the default bundle's rate
	// limits are meant for an hour (3600).
	WindowSeconds int `json:"window_seconds"`
}

// NewInput is the Input for step index of plan, taking the step, requester and
// environment from the plan. An index outside the plan gives an empty step,
// which every policy denies.
func NewInput(plan remediation.Plan, index int, now time.Time, state *remediation.Snapshot, history *History) Input {
	in := Input{
		Plan:        plan,
		Index:       index,
		Requester:   plan.Requester,
		Environment: plan.Environment,
		Now:         now,
		State:       state,
		History:     history,
	}
	if index >= 0 && index < len(plan.Steps) {
		in.Step = plan.Steps[index]
	}
	return in
}

// The conversions below build the input's AST directly. They mirror the JSON
// encoding of the types exactly (field names, omitempty); a test checks them
// against encoding/json for every field. Every decision pays for them, so they
// allocate as little as OPA's objects allow: shared key terms, and one block
// of value terms per object.

// objectBuilder collects an object's fields; omitempty fields are left out
// when empty.
type objectBuilder struct {
	// items are the fields so far: ast.NewObject copies them, so they can
	// live on the stack.
	items [maxFields][2]*ast.Term
	n     int
	// values holds the value terms, allocated once for the whole object; the
	// items point into it. Built with newObject's size, it never grows (were
	// it to, the items already made would keep pointing into the old block,
	// which stays valid).
	values []ast.Term
}

// maxFields is more than the fields of any object built with objectBuilder. A
// type that grows past it fails the conversion tests.
const maxFields = 16

// newObject starts an object of at most n fields.
func newObject(n int) objectBuilder {
	return objectBuilder{values: make([]ast.Term, 0, n)}
}

func (b *objectBuilder) put(key *ast.Term, v ast.Value) {
	b.values = append(b.values, ast.Term{Value: v})
	b.items[b.n] = [2]*ast.Term{key, &b.values[len(b.values)-1]}
	b.n++
}

func (b *objectBuilder) str(key *ast.Term, v string) { b.put(key, ast.String(v)) }

func (b *objectBuilder) strOmitEmpty(key *ast.Term, v string) {
	if v != "" {
		b.str(key, v)
	}
}

func (b *objectBuilder) object() ast.Object { return ast.NewObject(b.items[:b.n]...) }

// The field names of the input's objects, made once: building an input
// allocates no key. The evaluator never modifies a term.
var (
	keyKind, keyName, keyOwner = ast.StringTerm("kind"), ast.StringTerm("name"), ast.StringTerm("owner")

	keyAction, keyTarget, keyParams, keyJustification = ast.StringTerm("action"), ast.StringTerm("target"), ast.StringTerm("params"), ast.StringTerm("justification")
	keyCluster, keyNamespace                          = ast.StringTerm("cluster"), ast.StringTerm("namespace")
	keyReplicas, keyContainer, keyImage               = ast.StringTerm("replicas"), ast.StringTerm("container"), ast.StringTerm("image")

	keyRequesterActions, keyRequesterDenials  = ast.StringTerm("requester_actions"), ast.StringTerm("requester_denials")
	keyTargetActions, keyNamespaceQuarantines = ast.StringTerm("target_actions"), ast.StringTerm("namespace_quarantines")
	keyWindowSeconds                          = ast.StringTerm("window_seconds")
)

func intValue(n int) ast.Value { return ast.InternedTerm(n).Value }

// value is the input's AST, equal to the JSON encoding of in. It is an OPA
// lazy object whose fields are built here, except the plan: policies seldom
// read it, so it is converted (through encoding/json) only if one does. (A
// plain object would not do: building one hashes every field, the plan
// included, which converts it.)
func (in Input) value() ast.Value {
	fields := make(map[string]any, 8)
	fields["plan"] = in.Plan
	fields["step"] = stepValue(in.Step)
	fields["index"] = intValue(in.Index)
	fields["requester"] = requesterValue(in.Requester)
	fields["environment"] = ast.String(in.Environment)
	fields["now"] = ast.String(in.Now.Format(time.RFC3339Nano))
	if in.State != nil {
		fields["state"] = snapshotValue(*in.State)
	}
	if in.History != nil {
		fields["history"] = in.History.value()
	}
	return ast.LazyObject(fields)
}

func requesterValue(r remediation.Requester) ast.Value {
	b := newObject(3)
	b.strOmitEmpty(keyKind, r.Kind)
	b.strOmitEmpty(keyName, r.Name)
	b.strOmitEmpty(keyOwner, r.Owner)
	return b.object()
}

func stepValue(s remediation.Step) ast.Value {
	b := newObject(4)
	b.str(keyAction, string(s.Action))
	t := newObject(4)
	t.strOmitEmpty(keyCluster, s.Target.Cluster)
	t.strOmitEmpty(keyNamespace, s.Target.Namespace)
	t.str(keyKind, s.Target.Kind)
	t.str(keyName, s.Target.Name)
	b.put(keyTarget, t.object())
	// Params is a struct: encoding/json's omitempty never leaves it out.
	p := newObject(3)
	if s.Params.Replicas != nil {
		p.put(keyReplicas, intValue(int(*s.Params.Replicas)))
	}
	p.strOmitEmpty(keyContainer, s.Params.Container)
	p.strOmitEmpty(keyImage, s.Params.Image)
	b.put(keyParams, p.object())
	b.str(keyJustification, s.Justification)
	return b.object()
}

// snapshotValue is a lazy object, like the input: policies read a few of the
// target's fields (its replicas), and the others (images and labels above
// all) are converted only if one does.
func snapshotValue(s remediation.Snapshot) ast.Value {
	fields := make(map[string]any, 11)
	fields["exists"] = ast.Boolean(s.Exists)
	if s.UID != "" {
		fields["uid"] = s.UID
	}
	if s.Replicas != nil {
		fields["replicas"] = intValue(int(*s.Replicas))
	}
	if len(s.Images) > 0 {
		fields["images"] = s.Images
	}
	if len(s.PreviousImages) > 0 {
		fields["previous_images"] = s.PreviousImages
	}
	if s.RestartedAt != "" {
		fields["restarted_at"] = s.RestartedAt
	}
	if s.Unschedulable != nil {
		fields["unschedulable"] = ast.Boolean(*s.Unschedulable)
	}
	if s.Quarantine != "" {
		fields["quarantine"] = s.Quarantine
	}
	if s.QuarantinePolicy {
		fields["quarantine_policy"] = ast.Boolean(true)
	}
	if s.Phase != "" {
		fields["phase"] = s.Phase
	}
	if len(s.Labels) > 0 {
		fields["labels"] = s.Labels
	}
	return ast.LazyObject(fields)
}

func (h History) value() ast.Value {
	b := newObject(5)
	b.put(keyRequesterActions, intValue(h.RequesterActions))
	b.put(keyRequesterDenials, intValue(h.RequesterDenials))
	b.put(keyTargetActions, intValue(h.TargetActions))
	b.put(keyNamespaceQuarantines, intValue(h.NamespaceQuarantines))
	b.put(keyWindowSeconds, intValue(h.WindowSeconds))
	return b.object()
}
