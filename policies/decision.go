package policies

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/reins-dev/reins/remediation"
)

// Reasons of the deny decisions the engine makes itself, when the policy could
// not decide. Each is the start of the decision's first reason, followed by the
// details; match them with strings.HasPrefix.
const (
	// ReasonNoBundle: no bundle compiled since the engine started.
	ReasonNoBundle = "deny by default: no policy bundle is in force"
	// ReasonUnknownAction: the step's action is not one reins knows.
	ReasonUnknownAction = "deny by default: unknown action"
	// ReasonTimeout: the evaluation took longer than the engine's EvalTimeout.
	ReasonTimeout = "deny by default: the policy evaluation timed out"
	// ReasonCancelled: the caller's context ended during the evaluation.
	ReasonCancelled = "deny by default: the policy evaluation was cancelled"
	// ReasonEvalError: the policy failed while evaluating (e.g. a built-in
	// error, or conflicting values for one rule).
	ReasonEvalError = "deny by default: the policy evaluation failed"
	// ReasonUndefined: the bundle gave no decision for this input (no rule matched).
	ReasonUndefined = "deny by default: the policy's decision is undefined"
	// ReasonMalformed: the bundle's decision is not a valid decision.
	ReasonMalformed = "deny by default: the policy's decision is malformed"
	// ReasonNoReason: the policy denied without saying why.
	ReasonNoReason = "the policy denied the step without giving a reason"
)

// failure is a deny decision made by the engine.
func failure(bundle string, reasons ...string) remediation.Decision {
	return remediation.Decision{
		Effect: remediation.EffectDeny,
		// The step's risk is unknown: assume the worst.
		Risk:    remediation.RiskCritical,
		Reasons: reasons,
		Bundle:  bundle,
	}
}

// parseDecision reads the policy's decision. Every problem with it is listed;
// with any, the decision is a deny whose first reason says what is malformed.
func parseDecision(v ast.Value, bundle string) remediation.Decision {
	obj, ok := v.(ast.Object)
	if !ok {
		return failure(bundle, fmt.Sprintf("%s: %s is a %s, not an object", ReasonMalformed, Entrypoint, ast.ValueName(v)))
	}
	d := remediation.Decision{Bundle: bundle}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch effect, _ := stringField(obj, "effect"); remediation.Effect(effect) {
	case remediation.EffectAllow, remediation.EffectCosign, remediation.EffectDeny:
		d.Effect = remediation.Effect(effect)
	default:
		bad("effect %s is not one of \"allow\", \"cosign\", \"deny\"", show(obj, "effect"))
	}

	switch risk, _ := stringField(obj, "risk"); remediation.Risk(risk) {
	case remediation.RiskLow, remediation.RiskMedium, remediation.RiskHigh, remediation.RiskCritical:
		d.Risk = remediation.Risk(risk)
	default:
		bad("risk %s is not one of \"low\", \"medium\", \"high\", \"critical\"", show(obj, "risk"))
	}

	if t := obj.Get(ast.InternedTerm("reasons")); t != nil {
		arr, ok := t.Value.(*ast.Array)
		if !ok {
			bad("reasons is a %s, not a list of sentences", ast.ValueName(t.Value))
		} else {
			d.Reasons = make([]string, 0, arr.Len())
			for i := range arr.Len() {
				s, ok := arr.Elem(i).Value.(ast.String)
				if !ok {
					bad("reasons[%d] is a %s, not a sentence", i, ast.ValueName(arr.Elem(i).Value))
					continue
				}
				d.Reasons = append(d.Reasons, string(s))
			}
		}
	}

	if d.Effect == remediation.EffectCosign {
		n, ok := intField(obj, "approvers")
		switch {
		case !ok:
			bad("approvers %s is not a whole number; a cosign needs at least 1", show(obj, "approvers"))
		case n < 1:
			bad("approvers is %d; a cosign needs at least 1", n)
		default:
			d.Approvers = n
		}
		if g, ok := stringField(obj, "group"); !ok || strings.TrimSpace(g) == "" {
			bad("group %s is not a group name; a cosign needs someone who may approve", show(obj, "group"))
		} else {
			d.Group = g
		}
		if t := obj.Get(ast.InternedTerm("escalation_group")); t != nil {
			if g, ok := t.Value.(ast.String); ok {
				d.EscalationGroup = string(g)
			} else {
				bad("escalation_group %s is not a group name", t.Value)
			}
		}
		for _, f := range []struct {
			key string
			dst *int
		}{{"escalate_after_seconds", &d.EscalateAfterSeconds}, {"timeout_seconds", &d.TimeoutSeconds}} {
			if obj.Get(ast.InternedTerm(f.key)) == nil {
				continue
			}
			if n, ok := intField(obj, f.key); ok && n >= 0 {
				*f.dst = n
			} else {
				bad("%s %s is not a whole number of seconds", f.key, show(obj, f.key))
			}
		}
	}

	if len(problems) > 0 {
		risk := d.Risk
		if risk == "" {
			risk = remediation.RiskCritical
		}
		reasons := append([]string{ReasonMalformed + ": " + strings.Join(problems, "; ")}, d.Reasons...)
		return remediation.Decision{Effect: remediation.EffectDeny, Risk: risk, Reasons: reasons, Bundle: bundle}
	}
	if d.Effect == remediation.EffectDeny && len(d.Reasons) == 0 {
		d.Reasons = []string{ReasonNoReason}
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	return d
}

func stringField(obj ast.Object, key string) (string, bool) {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

func intField(obj ast.Object, key string) (int, bool) {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return 0, false
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		return 0, false
	}
	i, ok := n.Int()
	return i, ok
}

// show renders a field's value for a reason: its Rego text, or "missing".
func show(obj ast.Object, key string) string {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return "(missing)"
	}
	s := t.Value.String()
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
