package remediation

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// FieldError is one problem with one field of a plan.
type FieldError struct {
	// Field is a path such as "steps[1].params.replicas".
	Field string `json:"field"`
	// Message says what is wrong and what is expected.
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every problem found in a plan. Nothing is executed for
// a plan that has one.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid plan: " + strings.Join(msgs, "; ")
}

var (
	// DNS-1123 subdomain (object names) and label (namespaces, environments).
	subdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// A container image reference: no spaces or control characters.
	imageRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$`)
	// A workflow ID reins accepts: printable, no spaces.
	idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
)

// IsDNSName reports whether s is a DNS subdomain name as Kubernetes names
// objects (and reins names clusters): lower-case letters, digits, '-' and
// '.', at most 253 characters.
func IsDNSName(s string) bool { return len(s) <= 253 && subdomainRE.MatchString(s) }

type validator struct{ errs []FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) required(field, value, what string) bool {
	if strings.TrimSpace(value) == "" {
		v.add(field, "is required: %s", what)
		return false
	}
	return true
}

// Validate checks the plan and returns a *ValidationError naming every bad
// field, or nil.
func (p Plan) Validate() error {
	v := &validator{}
	if p.ID != "" && (len(p.ID) > 200 || !idRE.MatchString(p.ID)) {
		v.add("id", "must be at most 200 letters, digits and . _ : / -, starting with a letter or digit; or leave it out to derive it from the incident")
	}
	v.required("incident.source", p.Incident.Source, "where the incident came from, e.g. \"alertmanager\"")
	v.required("incident.fingerprint", p.Incident.Fingerprint, "the incident's identity, e.g. Alertmanager's fingerprint; duplicates of one incident join one remediation")
	if len(p.Incident.Fingerprint) > 200 {
		v.add("incident.fingerprint", "must be at most 200 characters")
	}
	switch p.Requester.Kind {
	case "", RequesterAgent, RequesterHuman:
	default:
		v.add("requester.kind", "must be %q or %q, got %q", RequesterAgent, RequesterHuman, p.Requester.Kind)
	}
	if p.Requester.Kind != "" && strings.TrimSpace(p.Requester.Name) == "" {
		v.add("requester.name", "is required when requester.kind is set")
	}
	if v.required("environment", p.Environment, "e.g. \"production\" or \"staging\"") && !labelRE.MatchString(p.Environment) {
		v.add("environment", "must be lower-case letters, digits and '-', got %q", p.Environment)
	}
	v.required("explanation", p.Explanation, "why this plan fixes the incident, in a sentence or more")
	switch {
	case len(p.Steps) == 0:
		v.add("steps", "is required: at least one step")
	case len(p.Steps) > MaxSteps:
		v.add("steps", "has %d steps; at most %d are allowed, split the plan", len(p.Steps), MaxSteps)
	}
	for i, s := range p.Steps {
		if i >= MaxSteps {
			break
		}
		s.validate(v, fmt.Sprintf("steps[%d]", i))
	}
	if len(v.errs) > 0 {
		return &ValidationError{Errors: v.errs}
	}
	return nil
}

func (s Step) validate(v *validator, at string) {
	spec, ok := s.Action.Spec()
	if !ok {
		names := make([]string, 0, len(Actions()))
		for _, a := range Actions() {
			names = append(names, string(a.Action))
		}
		v.add(at+".action", "unknown action %q; known actions: %s", s.Action, strings.Join(names, ", "))
	}
	v.required(at+".justification", s.Justification, "why this step, in a sentence")

	t := s.Target
	if t.Cluster != "" && !subdomainRE.MatchString(t.Cluster) {
		v.add(at+".target.cluster", "must be a DNS name (lower-case letters, digits, '-', '.'), got %q", t.Cluster)
	}
	if ok && !slices.Contains(spec.Kinds, t.Kind) {
		v.add(at+".target.kind", "%s acts on %s, got %q", s.Action, strings.Join(spec.Kinds, " or "), t.Kind)
	}
	if v.required(at+".target.name", t.Name, "the object's name") && (len(t.Name) > 253 || !subdomainRE.MatchString(t.Name)) {
		v.add(at+".target.name", "must be a Kubernetes object name (lower-case letters, digits, '-', '.'), got %q", t.Name)
	}
	if t.Kind == KindNode {
		if t.Namespace != "" {
			v.add(at+".target.namespace", "must be empty: a Node has no namespace")
		}
	} else if v.required(at+".target.namespace", t.Namespace, "the object's namespace") && (len(t.Namespace) > 63 || !labelRE.MatchString(t.Namespace)) {
		v.add(at+".target.namespace", "must be a Kubernetes namespace name (lower-case letters, digits, '-'), got %q", t.Namespace)
	}

	if !ok {
		return
	}
	for _, name := range s.Params.present() {
		if !slices.Contains(spec.Params, name) {
			if len(spec.Params) == 0 {
				v.add(at+".params."+name, "is not a parameter of %s, which takes none; remove it", s.Action)
			} else {
				v.add(at+".params."+name, "is not a parameter of %s, which takes %s; remove it", s.Action, strings.Join(spec.Params, ", "))
			}
		}
	}
	for _, name := range spec.Params {
		switch name {
		case "replicas":
			switch r := s.Params.Replicas; {
			case r == nil:
				v.add(at+".params.replicas", "is required: the replica count to set, a whole number from 0 to %d", MaxReplicas)
			case *r < 0 || *r > MaxReplicas:
				v.add(at+".params.replicas", "must be from 0 to %d, got %d", MaxReplicas, *r)
			}
		case "container":
			if v.required(at+".params.container", s.Params.Container, "the name of the container whose image to set") && !labelRE.MatchString(s.Params.Container) {
				v.add(at+".params.container", "must be a container name (lower-case letters, digits, '-'), got %q", s.Params.Container)
			}
		case "image":
			if v.required(at+".params.image", s.Params.Image, "the image reference to set, e.g. \"registry.example/app:v1.2.3\"") && (len(s.Params.Image) > 512 || !imageRE.MatchString(s.Params.Image)) {
				v.add(at+".params.image", "must be an image reference without spaces, got %q", s.Params.Image)
			}
		}
	}
}
