package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/remediation"
)

// Limits of the trigger config.
const (
	MaxTriggers        = 1000
	MaxMatchers        = 32
	maxRegexBytes      = 1024
	maxTemplateBytes   = 16 << 10
	maxTemplateOutput  = 16 << 10
	maxPlaybookStrings = 1000
)

// TriggerConfig is one trigger as configured (intake.triggers, or the file
// intake.triggers_file). Triggers are tried in their configured order; the
// first whose Match holds takes the event.
type TriggerConfig struct {
	// Name is the trigger's name: lower-case letters, digits and '-' (at
	// most 63), unique. It is the incident source of the remediations it
	// starts, and their requester is "agent:trigger:<name>".
	Name string `json:"name"`
	// Match selects the events the trigger takes.
	Match MatchConfig `json:"match"`
	// Owner is the human accountable for the trigger's remediations: like
	// a requester, they may not co-sign its steps. Optional.
	Owner string `json:"owner,omitempty"`
	// Playbook is the plan the trigger starts, as a template: a plan
	// without id, incident and requester (reins sets those), in which every
	// string may use Go text/template over the event (see FillPlaybook).
	Playbook json.RawMessage `json:"playbook"`
}

// MatchConfig selects events. Every condition given must hold; an empty
// MatchConfig takes every event.
type MatchConfig struct {
	// Kind is "alertmanager" or "cloudevent"; empty: both.
	Kind Kind `json:"kind,omitempty"`
	// Type matches the event's type (an alert's alertname, a CloudEvent's
	// type): a plain value is compared for equality; a value that starts
	// with one of the operators =, !=, =~, !~ is compared as a label
	// matcher's value is (e.g. `=~"Kube.*"`). Empty: any type.
	Type string `json:"type,omitempty"`
	// Labels are label matchers in Alertmanager's syntax, NAME OP VALUE,
	// with OP one of = (equal), != (not equal), =~ (matches the regular
	// expression), !~ (does not match), and VALUE plain or double-quoted:
	// severity=critical, namespace=~"shop-.*". Regular expressions are RE2
	// and match the whole value. A missing label has the value "".
	Labels []string `json:"labels,omitempty"`
}

// LoadTriggersFile reads a trigger file: YAML (or JSON) with one key,
// "triggers", holding the list of TriggerConfig. Unknown fields are refused.
func LoadTriggersFile(path string) ([]TriggerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the trigger file: %w", err)
	}
	var f struct {
		Triggers []TriggerConfig `json:"triggers"`
	}
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("trigger file %s: %w", path, err)
	}
	if len(f.Triggers) == 0 {
		return nil, fmt.Errorf("trigger file %s: has no triggers; it holds a list under the key \"triggers\"", path)
	}
	return f.Triggers, nil
}

// ConfigError lists every problem of a trigger config; Field is a path such
// as "triggers[1].match.labels[0]".
type ConfigError struct {
	Errors []FieldError
}

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid triggers: " + strings.Join(msgs, "; ")
}

// Triggers are compiled triggers, in their configured order. Safe for
// concurrent use.
type Triggers struct {
	list []*Trigger
}

// Trigger is one compiled trigger.
type Trigger struct {
	name   string
	owner  string
	kind   Kind
	typ    *matcher
	labels []matcher
	// playbook is the plan template: a JSON tree whose templated strings
	// are *template.Template.
	playbook map[string]any
}

var (
	triggerNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	ownerRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$`)
	labelNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./:-]{0,255}$`)
)

// Compile checks and compiles triggers (regular expressions and templates
// once), and returns a *ConfigError naming every bad field.
func Compile(cfgs []TriggerConfig) (*Triggers, error) {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(cfgs) > MaxTriggers {
		add("triggers", "has %d triggers; at most %d are allowed", len(cfgs), MaxTriggers)
		return nil, &ConfigError{Errors: errs}
	}
	out := &Triggers{}
	seen := map[string]int{}
	for i, tc := range cfgs {
		at := "triggers[" + strconv.Itoa(i) + "]"
		t := &Trigger{name: tc.Name, owner: tc.Owner, kind: tc.Match.Kind}
		switch {
		case !triggerNameRE.MatchString(tc.Name):
			add(at+".name", "must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit, got %q", clip(tc.Name))
		case seen[tc.Name] > 0:
			add(at+".name", "%q is also the name of triggers[%d]; names must be unique", tc.Name, seen[tc.Name]-1)
		default:
			seen[tc.Name] = i + 1
		}
		if tc.Owner != "" && !ownerRE.MatchString(tc.Owner) {
			add(at+".owner", "must be a client name (letters, digits and . _ @ -, at most 100), got %q", clip(tc.Owner))
		}
		switch tc.Match.Kind {
		case "", KindAlertmanager, KindCloudEvent:
		default:
			add(at+".match.kind", "must be %q or %q, or left out for both, got %q", KindAlertmanager, KindCloudEvent, clip(string(tc.Match.Kind)))
		}
		if tc.Match.Type != "" {
			m, err := parseMatcher("type", tc.Match.Type, true)
			if err != nil {
				add(at+".match.type", "%v", err)
			} else {
				t.typ = &m
			}
		}
		if len(tc.Match.Labels) > MaxMatchers {
			add(at+".match.labels", "has %d matchers; at most %d are allowed", len(tc.Match.Labels), MaxMatchers)
		} else {
			for j, s := range tc.Match.Labels {
				m, err := parseMatcher("", s, false)
				if err != nil {
					add(at+".match.labels["+strconv.Itoa(j)+"]", "%v", err)
					continue
				}
				t.labels = append(t.labels, m)
			}
		}
		pb, perrs := compilePlaybook(tc.Playbook)
		for _, fe := range perrs {
			add(at+"."+fe.Field, "%s", fe.Message)
		}
		t.playbook = pb
		out.list = append(out.list, t)
	}
	if len(errs) > 0 {
		return nil, &ConfigError{Errors: errs}
	}
	return out, nil
}

// Len is the number of triggers.
func (ts *Triggers) Len() int { return len(ts.list) }

// Match returns the first trigger that takes e, or nil.
func (ts *Triggers) Match(e Event) *Trigger {
	for _, t := range ts.list {
		if t.Matches(e) {
			return t
		}
	}
	return nil
}

// Name is the trigger's name.
func (t *Trigger) Name() string { return t.name }

// Matches reports whether the trigger takes e.
func (t *Trigger) Matches(e Event) bool {
	if t.kind != "" && t.kind != e.Kind {
		return false
	}
	if t.typ != nil && !t.typ.matches(e.Type) {
		return false
	}
	for _, m := range t.labels {
		if !m.matches(e.Labels[m.name]) {
			return false
		}
	}
	return true
}

// Incident is the incident of the remediation the trigger starts for e: its
// source is the trigger's name, its fingerprint the event's.
func (t *Trigger) Incident(e Event) remediation.Incident {
	return remediation.Incident{Source: t.name, Fingerprint: e.Fingerprint, URL: e.URL}
}

// WorkflowID is the ID of the remediation the trigger starts for e; every
// event of the same incident maps to it.
func (t *Trigger) WorkflowID(e Event) string {
	return remediation.Plan{Incident: t.Incident(e)}.WorkflowID()
}

// Requester is who the trigger's remediations are requested by: the
// trigger, never anything the event says.
func (t *Trigger) Requester() remediation.Requester {
	return remediation.Requester{Kind: remediation.RequesterAgent, Name: "trigger:" + t.name, Owner: t.owner}
}

// matcher is one compiled NAME OP VALUE condition.
type matcher struct {
	name  string
	op    string
	value string
	re    *regexp.Regexp
}

func (m matcher) matches(v string) bool {
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	default: // "!~"
		return !m.re.MatchString(v)
	}
}

// parseMatcher parses NAME OP VALUE; with implicitName, s is OP VALUE or a
// plain value (equality) and name is given.
func parseMatcher(name, s string, implicitName bool) (matcher, error) {
	rest := strings.TrimSpace(s)
	if !implicitName {
		i := strings.IndexAny(rest, "=!")
		if i <= 0 {
			return matcher{}, fmt.Errorf("%q is not a matcher NAME OP VALUE, e.g. severity=critical or namespace=~\"shop-.*\" (OP: = != =~ !~)", clip(s))
		}
		name = strings.TrimSpace(rest[:i])
		rest = rest[i:]
		if !labelNameRE.MatchString(name) {
			return matcher{}, fmt.Errorf("%q is not a label name (letters, digits and _ . / : -, starting with a letter or _)", clip(name))
		}
	}
	m := matcher{name: name}
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if v, ok := strings.CutPrefix(rest, op); ok {
			m.op, rest = op, v
			break
		}
	}
	if m.op == "" {
		if !implicitName {
			return matcher{}, fmt.Errorf("%q has no operator: use = != =~ or !~", clip(s))
		}
		m.op = "="
	}
	value := strings.TrimSpace(rest)
	if strings.HasPrefix(value, `"`) {
		uq, ok := unquote(value)
		if !ok {
			return matcher{}, fmt.Errorf("%q: the quoted value is not one double-quoted string (escape \" and \\ inside it)", clip(s))
		}
		value = uq
	}
	m.value = value
	if m.op == "=~" || m.op == "!~" {
		if len(value) > maxRegexBytes {
			return matcher{}, fmt.Errorf("the regular expression is %d bytes long; at most %d are allowed", len(value), maxRegexBytes)
		}
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return matcher{}, fmt.Errorf("%q is not a regular expression (RE2 syntax): %v", clip(value), err)
		}
		m.re = re
	}
	return m, nil
}

// unquote reads a double-quoted matcher value as Alertmanager does: \",
// \\ and \n are escapes, any other backslash is itself (so that regular
// expressions such as "shop\.eu" need no doubling).
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	escaped := false
	for _, r := range s[1 : len(s)-1] {
		switch {
		case escaped:
			escaped = false
			switch r {
			case 'n':
				b.WriteByte('\n')
			case '"', '\\':
				b.WriteRune(r)
			default:
				b.WriteByte('\\')
				b.WriteRune(r)
			}
		case r == '\\':
			escaped = true
		case r == '"':
			return "", false
		default:
			b.WriteRune(r)
		}
	}
	if escaped {
		return "", false
	}
	return b.String(), true
}

// Fields of a plan that reins sets and a playbook may not.
var reservedPlaybookFields = map[string]string{
	"id":        "is derived from the trigger and the event's fingerprint",
	"incident":  "is set by reins (source: the trigger's name; fingerprint and url: the event's)",
	"requester": "is the trigger itself (agent trigger:<name>, with the trigger's owner)",
}

// compilePlaybook checks a playbook's shape against the plan's and compiles
// each templated string.
func compilePlaybook(raw json.RawMessage) (map[string]any, []FieldError) {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		add("playbook", "is required: the plan to start (environment, explanation, steps), see the README's trigger example")
		return nil, errs
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		add("playbook", "is not valid JSON: %v", err)
		return nil, errs
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		add("playbook", "must be an object: a plan without id, incident and requester")
		return nil, errs
	}
	for _, k := range slices.Sorted(maps.Keys(reservedPlaybookFields)) {
		if _, set := obj[k]; set {
			add("playbook."+k, "%s; remove it", reservedPlaybookFields[k])
		}
	}
	// The shape: field names and value types, as remediation.Decode reads them.
	if _, err := remediation.DecodeBytes(raw); err != nil {
		var verr *remediation.ValidationError
		if errors.As(err, &verr) {
			for _, fe := range verr.Errors {
				field := strings.Trim(fe.Field, `"`)
				if field == "plan" {
					field = ""
				}
				add(strings.TrimSuffix("playbook."+field, "."), "%s", fe.Message)
			}
		} else {
			add("playbook", "%v", err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	count := 0
	compiled := compileNode(obj, "playbook", &count, add).(map[string]any)
	if count > maxPlaybookStrings {
		add("playbook", "has %d strings; at most %d are allowed", count, maxPlaybookStrings)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return compiled, nil
}

// compileNode copies a JSON tree, turning each string that holds "{{" into
// a template named by its path.
func compileNode(v any, path string, count *int, add func(field, format string, args ...any)) any {
	switch n := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for _, k := range slices.Sorted(maps.Keys(n)) {
			out[k] = compileNode(n[k], path+"."+k, count, add)
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, e := range n {
			out[i] = compileNode(e, path+"["+strconv.Itoa(i)+"]", count, add)
		}
		return out
	case string:
		*count++
		if !strings.Contains(n, "{{") {
			return n
		}
		if len(n) > maxTemplateBytes {
			add(path, "is a template of %d bytes; at most %d are allowed", len(n), maxTemplateBytes)
			return n
		}
		t, err := template.New(path).Option("missingkey=error").Funcs(templateFuncs).Parse(n)
		if err != nil {
			add(path, "is not a valid template: %v", err)
			return n
		}
		return t
	}
	return v
}
