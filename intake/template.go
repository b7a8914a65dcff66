package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/reins-dev/reins/remediation"
)

// templateFuncs are the functions a playbook template may call beside
// text/template's own, written for pipelines: {{ .labels.pod | trimPrefix "x-" }}.
var templateFuncs = template.FuncMap{
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	// get is index for labels and annotations, but strict: {{ get .labels "app.kubernetes.io/name" }}
	// fails when the event has no such label, where index gives "".
	"get": func(m map[string]string, key string) (string, error) {
		v, ok := m[key]
		if !ok {
			return "", fmt.Errorf("map has no entry for key %q", key)
		}
		return v, nil
	},
}

// PlaybookError is a matched event whose playbook could not be made into a
// valid plan: a template referred to something the event does not have, or
// the filled plan is invalid. Nothing was started for it.
type PlaybookError struct {
	// Trigger is the trigger that matched.
	Trigger string
	// Errors name each bad field of the playbook, such as
	// "playbook.steps[0].target.name".
	Errors []FieldError
	// Missing is the label or annotation (".labels.deployment") a template
	// referred to that the event does not have; empty for other errors.
	Missing string
}

func (e *PlaybookError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return fmt.Sprintf("trigger %q: %s", e.Trigger, strings.Join(msgs, "; "))
}

// missingKeyRE finds, in text/template's error for a missing map key, the
// reference and the key.
var missingKeyRE = regexp.MustCompile(`at <([^>]*)>: (?:error calling get: )?map has no entry for key "((?:[^"\\]|\\.)*)"`)

// Plan fills the trigger's playbook for e and returns the plan to start:
// the playbook's strings executed as templates over e (see FillPlaybook),
// with the incident and requester set by the trigger (Incident, Requester),
// decoded and validated with remediation's rules. A failure is a
// *PlaybookError.
func (t *Trigger) Plan(e Event) (remediation.Plan, error) {
	filled, err := fillNode(t.playbook, "playbook", templateData(e))
	if err != nil {
		pe := &PlaybookError{Trigger: t.name}
		var fe *fillError
		if errors.As(err, &fe) {
			pe.Errors = []FieldError{{Field: fe.field, Message: fe.message}}
			pe.Missing = fe.missing
		} else {
			pe.Errors = []FieldError{{Field: "playbook", Message: err.Error()}}
		}
		return remediation.Plan{}, pe
	}
	// Marshalling the filled tree escapes every value: an event's label
	// with quotes or braces stays one JSON string.
	raw, err := json.Marshal(filled)
	if err != nil {
		return remediation.Plan{}, &PlaybookError{Trigger: t.name, Errors: []FieldError{{Field: "playbook", Message: err.Error()}}}
	}
	plan, err := remediation.DecodeBytes(raw)
	if err == nil {
		plan.Incident = t.Incident(e)
		plan.Requester = t.Requester()
		err = plan.Validate()
	}
	if err != nil {
		pe := &PlaybookError{Trigger: t.name}
		var verr *remediation.ValidationError
		if errors.As(err, &verr) {
			for _, fe := range verr.Errors {
				field := "playbook." + fe.Field
				switch {
				case fe.Field == "plan":
					field = "playbook"
				case strings.HasPrefix(fe.Field, "incident."):
					field = "event.fingerprint"
				}
				pe.Errors = append(pe.Errors, FieldError{Field: field, Message: fe.Message + " (after filling the templates)"})
			}
		} else {
			pe.Errors = []FieldError{{Field: "playbook", Message: err.Error()}}
		}
		return remediation.Plan{}, pe
	}
	return plan, nil
}

// templateData is what a playbook template sees:
//
//	.labels.NAME, .annotations.NAME   the event's labels and annotations
//	                                  (get .labels "app.kubernetes.io/name" for names with dots)
//	.event.kind .event.type .event.source .event.id .event.subject
//	.event.status .event.fingerprint .event.url
//
// A reference to a name the event does not have fails (missingkey=error).
func templateData(e Event) map[string]any {
	labels, annotations := e.Labels, e.Annotations
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	return map[string]any{
		"labels":      labels,
		"annotations": annotations,
		"event": map[string]string{
			"kind": string(e.Kind), "type": e.Type, "source": e.Source, "id": e.ID, "subject": e.Subject,
			"status": string(e.Status), "fingerprint": e.Fingerprint, "url": e.URL,
		},
	}
}

// fillError is a template that failed at path.
type fillError struct {
	field, message, missing string
}

func (e *fillError) Error() string { return e.field + ": " + e.message }

// fillNode copies a compiled playbook tree with each template executed over data.
func fillNode(v any, path string, data map[string]any) (any, error) {
	switch n := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for _, k := range slices.Sorted(maps.Keys(n)) {
			f, err := fillNode(n[k], path+"."+k, data)
			if err != nil {
				return nil, err
			}
			out[k] = f
		}
		return out, nil
	case []any:
		out := make([]any, len(n))
		for i, e := range n {
			f, err := fillNode(e, path+"["+strconv.Itoa(i)+"]", data)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	case *template.Template:
		return execute(n, path, data)
	}
	return v, nil
}

// execute runs one template, its output bounded.
func execute(t *template.Template, path string, data map[string]any) (string, error) {
	w := &boundedBuilder{max: maxTemplateOutput}
	err := t.Execute(w, data)
	if err == nil {
		return w.String(), nil
	}
	if errors.Is(err, errTemplateOutput) {
		return "", &fillError{field: path, message: fmt.Sprintf("the template's output is longer than %d bytes", maxTemplateOutput)}
	}
	if m := missingKeyRE.FindStringSubmatch(err.Error()); m != nil {
		ref, key := m[1], m[2]
		what := "the template refers to " + ref + ", which the event does not have"
		switch base := strings.TrimPrefix(ref, "get "); {
		case strings.HasPrefix(base, ".labels"):
			what = fmt.Sprintf("the event has no label %q (the template refers to %s)", key, ref)
		case strings.HasPrefix(base, ".annotations"):
			what = fmt.Sprintf("the event has no annotation %q (the template refers to %s)", key, ref)
		}
		return "", &fillError{field: path, missing: ref, message: what + "; add it to the events this trigger matches (or match only events that have it: " + key + `=~".+"), or change the template`}
	}
	return "", &fillError{field: path, message: "the template failed: " + err.Error()}
}

var errTemplateOutput = errors.New("template output too long")

// boundedBuilder is a strings.Builder that refuses to grow past max.
type boundedBuilder struct {
	strings.Builder
	max int
}

func (b *boundedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTemplateOutput
	}
	return b.Builder.Write(p)
}
