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
// against encoding/json for every field.

// objectBuilder collects an object's fields; omitempty fields are left out
// when empty.
type objectBuilder struct{ terms [][2]*ast.Term }

func (b *objectBuilder) put(key string, v ast.Value) {
	b.terms = append(b.terms, [2]*ast.Term{keyTerm(key), ast.NewTerm(v)})
}

// keyTerms are the field names of the input's objects, made once: building
// an input then allocates no key. The evaluator never modifies a term.
var keyTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{
		"plan", "step", "index", "requester", "environment", "now", "state", "history",
		"kind", "name", "action", "target", "params", "justification",
		"cluster", "namespace", "replicas", "container", "image",
		"exists", "uid", "images", "previous_images", "restarted_at", "unschedulable",
		"quarantine", "quarantine_policy", "phase", "labels",
		"requester_actions", "requester_denials", "target_actions", "namespace_quarantines", "window_seconds",
	} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

// keyTerm is the term of an object key: a shared one for the input's field
// names, a new one for other keys (labels).
func keyTerm(k string) *ast.Term {
	if t, ok := keyTerms[k]; ok {
		return t
	}
	return ast.InternedTerm(k)
}

func (b *objectBuilder) str(key, v string) { b.put(key, ast.String(v)) }

func (b *objectBuilder) strOmitEmpty(key, v string) {
	if v != "" {
		b.str(key, v)
	}
}

func (b *objectBuilder) object() ast.Object { return ast.NewObject(b.terms...) }

func intValue(n int) ast.Value { return ast.InternedTerm(n).Value }

// value is the input's AST, equal to the JSON encoding of in. It is an OPA
// lazy object whose fields are built here, except the plan: policies seldom
// read it, so it is converted (through encoding/json) only if one does.
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
	b := objectBuilder{terms: make([][2]*ast.Term, 0, 2)}
	b.strOmitEmpty("kind", r.Kind)
	b.strOmitEmpty("name", r.Name)
	return b.object()
}

func stepValue(s remediation.Step) ast.Value {
	b := objectBuilder{terms: make([][2]*ast.Term, 0, 4)}
	b.str("action", string(s.Action))
	t := objectBuilder{terms: make([][2]*ast.Term, 0, 4)}
	t.strOmitEmpty("cluster", s.Target.Cluster)
	t.strOmitEmpty("namespace", s.Target.Namespace)
	t.str("kind", s.Target.Kind)
	t.str("name", s.Target.Name)
	b.put("target", t.object())
	// Params is a struct: encoding/json's omitempty never leaves it out.
	p := objectBuilder{terms: make([][2]*ast.Term, 0, 3)}
	if s.Params.Replicas != nil {
		p.put("replicas", intValue(int(*s.Params.Replicas)))
	}
	p.strOmitEmpty("container", s.Params.Container)
	p.strOmitEmpty("image", s.Params.Image)
	b.put("params", p.object())
	b.str("justification", s.Justification)
	return b.object()
}

func snapshotValue(s remediation.Snapshot) ast.Value {
	b := objectBuilder{terms: make([][2]*ast.Term, 0, 6)}
	b.put("exists", ast.Boolean(s.Exists))
	b.strOmitEmpty("uid", s.UID)
	if s.Replicas != nil {
		b.put("replicas", intValue(int(*s.Replicas)))
	}
	if len(s.Images) > 0 {
		imgs := make([]*ast.Term, len(s.Images))
		for i, c := range s.Images {
			ci := objectBuilder{terms: make([][2]*ast.Term, 0, 2)}
			ci.str("container", c.Container)
			ci.str("image", c.Image)
			imgs[i] = ast.NewTerm(ci.object())
		}
		b.put("images", ast.NewArray(imgs...))
	}
	if len(s.PreviousImages) > 0 {
		prev := make([]*ast.Term, len(s.PreviousImages))
		for i, img := range s.PreviousImages {
			prev[i] = ast.StringTerm(img)
		}
		b.put("previous_images", ast.NewArray(prev...))
	}
	b.strOmitEmpty("restarted_at", s.RestartedAt)
	if s.Unschedulable != nil {
		b.put("unschedulable", ast.Boolean(*s.Unschedulable))
	}
	b.strOmitEmpty("quarantine", s.Quarantine)
	if s.QuarantinePolicy {
		b.put("quarantine_policy", ast.Boolean(true))
	}
	b.strOmitEmpty("phase", s.Phase)
	if len(s.Labels) > 0 {
		labels := objectBuilder{terms: make([][2]*ast.Term, 0, len(s.Labels))}
		for k, v := range s.Labels {
			labels.str(k, v)
		}
		b.put("labels", labels.object())
	}
	return b.object()
}

func (h History) value() ast.Value {
	b := objectBuilder{terms: make([][2]*ast.Term, 0, 5)}
	b.put("requester_actions", intValue(h.RequesterActions))
	b.put("requester_denials", intValue(h.RequesterDenials))
	b.put("target_actions", intValue(h.TargetActions))
	b.put("namespace_quarantines", intValue(h.NamespaceQuarantines))
	b.put("window_seconds", intValue(h.WindowSeconds))
	return b.object()
}
