package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reins-dev/reins/remediation"
)

// Kind is the format an event arrived in.
type Kind string

// The kinds of event the intake reads.
const (
	// KindAlertmanager: one alert of an Alertmanager webhook post (payload version 4).
	KindAlertmanager Kind = "alertmanager"
	// KindCloudEvent: a CloudEvents 1.0 event.
	KindCloudEvent Kind = "cloudevent"
)

// How an event reached the intake.
const (
	ViaHTTP = "http"
	ViaNATS = "nats"
)

// Status is whether the incident an event reports is going on.
type Status string

// Event statuses.
const (
	StatusFiring   Status = "firing"
	StatusResolved Status = "resolved"
)

// Event is one incident report, whatever door it came through: the alerts of
// an Alertmanager post are one Event each, a CloudEvent is one Event.
type Event struct {
	Kind Kind
	// Via is ViaHTTP or ViaNATS.
	Via string
	// Type is the alert's alertname label, or the CloudEvent's type.
	Type string
	// Source is the Alertmanager's externalURL, or the CloudEvent's source.
	Source string
	// ID is the CloudEvent's id; for an alert, its fingerprint.
	ID string
	// Subject is the CloudEvent's subject; empty for an alert.
	Subject string
	Status  Status
	// Fingerprint is the incident's identity: Alertmanager's fingerprint of
	// the alert; for a CloudEvent, data.fingerprint or else a hash of its
	// source and id (see DecodeCloudEvent). With the trigger's name it makes
	// the remediation's workflow ID.
	Fingerprint string
	// Labels select triggers and fill playbooks.
	Labels map[string]string
	// Annotations fill playbooks (descriptions, runbook links, …).
	Annotations map[string]string
	// StartsAt and EndsAt are when the incident started and (resolved) ended;
	// zero when the event does not say.
	StartsAt time.Time
	EndsAt   time.Time
	// URL links to the incident: the alert's generatorURL, or data.url.
	URL string
}

// Limits bound what the intake reads. The zero value of each field means
// its default.
type Limits struct {
	// MaxBodyBytes bounds a request body or NATS message. Default 1 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// MaxAlerts bounds the alerts of one Alertmanager post. Default 1000.
	MaxAlerts int `json:"max_alerts,omitempty"`
	// MaxLabels bounds the labels, and separately the annotations, of one
	// event. Default 64.
	MaxLabels int `json:"max_labels,omitempty"`
	// MaxNameBytes bounds a label or annotation name. Default 256.
	MaxNameBytes int `json:"max_name_bytes,omitempty"`
	// MaxValueBytes bounds a label or annotation value, and the event's
	// type, source, id, subject and URL. Default 8192.
	MaxValueBytes int `json:"max_value_bytes,omitempty"`
}

// WithDefaults returns l with every unset field at its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxAlerts <= 0 {
		l.MaxAlerts = 1000
	}
	if l.MaxLabels <= 0 {
		l.MaxLabels = 64
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = 256
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = 8192
	}
	return l
}

// FieldError is one bad field of an event, named by its path in the payload
// ("alerts[2].labels.severity", "data.status", "ce-source").
type FieldError = remediation.FieldError

// InvalidError is an event that cannot be read: nothing was started for it.
type InvalidError struct {
	// Kind is what the payload was read as.
	Kind   Kind
	Errors []FieldError
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid " + kindName(e.Kind) + ": " + strings.Join(msgs, "; ")
}

func kindName(k Kind) string {
	switch k {
	case KindAlertmanager:
		return "Alertmanager webhook payload"
	case KindCloudEvent:
		return "CloudEvent"
	}
	return "event"
}

// TooLargeError is a body over Limits.MaxBodyBytes.
type TooLargeError struct {
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the body is larger than %d bytes (intake.limits.max_body_bytes): send fewer alerts per post (Alertmanager's max_alerts) or raise the limit", e.Limit)
}

// ErrUnsupported is a payload in a format the intake does not read.
var ErrUnsupported = errors.New("unsupported event format")

// fingerprintRE is what a fingerprint may be: it becomes part of a workflow ID.
var fingerprintRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// checker collects the field errors of one payload.
type checker struct {
	limits Limits
	errs   []FieldError
}

// maxFieldErrors bounds the errors reported for one payload.
const maxFieldErrors = 50

func (c *checker) add(field, format string, args ...any) {
	if len(c.errs) < maxFieldErrors {
		c.errs = append(c.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
}

func (c *checker) err(kind Kind) error {
	if len(c.errs) == 0 {
		return nil
	}
	return &InvalidError{Kind: kind, Errors: c.errs}
}

// text checks a bounded, valid UTF-8 string without control characters.
func (c *checker) text(field, v string) {
	switch {
	case len(v) > c.limits.MaxValueBytes:
		c.add(field, "is %d bytes long; at most %d are allowed (intake.limits.max_value_bytes)", len(v), c.limits.MaxValueBytes)
	case !utf8.ValidString(v):
		c.add(field, "is not valid UTF-8")
	case strings.ContainsFunc(v, isControl):
		c.add(field, "contains a control character; send printable text")
	}
}

// pairs checks a label or annotation map. Label values (printable) are
// checked as other text fields are, without control characters: they
// select triggers, fill plans' names and targets and are recorded;
// annotation values (descriptions) may hold line breaks and tabs.
func (c *checker) pairs(field string, m map[string]string, printable bool) {
	if len(m) > c.limits.MaxLabels {
		c.add(field, "has %d entries; at most %d are allowed (intake.limits.max_labels)", len(m), c.limits.MaxLabels)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		at := field + "." + k
		switch {
		case k == "":
			c.add(field, "has an empty name; every name needs at least one character")
			continue
		case len(k) > c.limits.MaxNameBytes:
			c.add(field+"."+k[:min(len(k), 32)]+"…", "is a name of %d bytes; at most %d are allowed (intake.limits.max_name_bytes)", len(k), c.limits.MaxNameBytes)
			continue
		case !utf8.ValidString(k) || strings.ContainsFunc(k, isControl):
			c.add(field, "has a name that is not printable UTF-8 text")
			continue
		}
		v := m[k]
		if len(v) > c.limits.MaxValueBytes {
			c.add(at, "is %d bytes long; at most %d are allowed (intake.limits.max_value_bytes)", len(v), c.limits.MaxValueBytes)
		} else if !utf8.ValidString(v) {
			c.add(at, "is not valid UTF-8")
		} else if printable && strings.ContainsFunc(v, isControl) {
			c.add(at, "contains a control character; send printable text")
		}
	}
}

func (c *checker) fingerprint(field, v string) {
	if !fingerprintRE.MatchString(v) {
		c.add(field, "must be 1 to 128 letters, digits and . _ : -, starting with a letter or digit, got %q", clip(v))
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:61] + "..."
}

// Label is one label of an event as the audit record lists it.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// EventSummary is the part of an event the audit record keeps. It is
// bounded, whatever the event (see Summary), so that its record always fits
// the audit sink.
type EventSummary struct {
	Kind        Kind    `json:"kind"`
	Via         string  `json:"via"`
	Type        string  `json:"type,omitempty"`
	Source      string  `json:"source,omitempty"`
	ID          string  `json:"id,omitempty"`
	Subject     string  `json:"subject,omitempty"`
	Status      Status  `json:"status,omitempty"`
	Fingerprint string  `json:"fingerprint,omitempty"`
	Labels      []Label `json:"labels,omitempty"`
	// Truncated: some values were cut (they end in "…") or labels left
	// out, to keep the record bounded; OmittedLabels counts those left out.
	Truncated     bool `json:"truncated,omitempty"`
	OmittedLabels int  `json:"omitted_labels,omitempty"`
}

// Bounds of an EventSummary. An event's values may be up to
// Limits.MaxValueBytes each, and encoding/json can write a byte as six
// ("<" as \u003c): these, with Outcome's own bounds, keep a record under
// 128 KiB whatever the event.
const (
	// maxSummaryTextBytes bounds the type, source, id, subject and
	// fingerprint.
	maxSummaryTextBytes = 512
	// maxSummaryNameBytes and maxSummaryValueBytes bound a label's name and value.
	maxSummaryNameBytes  = 128
	maxSummaryValueBytes = 256
	// maxSummaryLabelBytes bounds the names and values of all labels kept.
	maxSummaryLabelBytes = 4 << 10
)

// Summary is the event as the audit record keeps it: labels sorted by
// name; long values cut and, past a total, labels left out, which
// Truncated and OmittedLabels say.
func (e Event) Summary() EventSummary {
	s := EventSummary{Kind: e.Kind, Via: e.Via, Status: e.Status}
	s.Type = s.cut(e.Type, maxSummaryTextBytes)
	s.Source = s.cut(e.Source, maxSummaryTextBytes)
	s.ID = s.cut(e.ID, maxSummaryTextBytes)
	s.Subject = s.cut(e.Subject, maxSummaryTextBytes)
	s.Fingerprint = s.cut(e.Fingerprint, maxSummaryTextBytes)
	room := maxSummaryLabelBytes
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		l := Label{Name: s.cut(k, maxSummaryNameBytes), Value: s.cut(e.Labels[k], maxSummaryValueBytes)}
		if len(l.Name)+len(l.Value) > room {
			s.Truncated = true
			s.OmittedLabels++
			continue
		}
		room -= len(l.Name) + len(l.Value)
		s.Labels = append(s.Labels, l)
	}
	return s
}

// cut returns v cut to at most limit bytes, and marks s truncated if it was.
func (s *EventSummary) cut(v string, limit int) string {
	c, cut := truncate(v, limit)
	s.Truncated = s.Truncated || cut
	return c
}

// truncate cuts v to at most limit bytes on a character boundary, ending
// in "…" when it was cut.
func truncate(v string, limit int) (string, bool) {
	if len(v) <= limit {
		return v, false
	}
	const ellipsis = "…"
	n := max(limit-len(ellipsis), 0)
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n] + ellipsis, true
}

// stringMap reads a JSON object of strings, naming the member that is not a
// string ("labels.replicas") where encoding/json names only the map.
type stringMap map[string]string

// UnmarshalJSON reads the object.
func (m *stringMap) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(stringMap, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return &json.UnmarshalTypeError{Value: jsonKind(v), Type: reflect.TypeFor[string](), Field: k}
		}
		out[k] = s
	}
	*m = out
	return nil
}

// jsonKind names the kind of a JSON value by its first byte.
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "value"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '"':
		return "string"
	}
	return "number"
}
