package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// AlertmanagerVersion is the webhook payload version the intake reads.
const AlertmanagerVersion = "4"

// alertmanagerPayload is Alertmanager's webhook payload, version 4
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
// Fields reins does not use are left out; unknown fields are ignored, so
// that a newer Alertmanager that adds some is still read.
type alertmanagerPayload struct {
	Version     string            `json:"version"`
	Status      string            `json:"status"`
	Receiver    string            `json:"receiver"`
	ExternalURL string            `json:"externalURL"`
	Alerts      []json.RawMessage `json:"alerts"`
}

type alertmanagerAlert struct {
	Status       string    `json:"status"`
	Labels       stringMap `json:"labels"`
	Annotations  stringMap `json:"annotations"`
	StartsAt     string    `json:"startsAt"`
	EndsAt       string    `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// DecodeAlertmanager reads an Alertmanager webhook post (payload version 4)
// from r, at most limits.MaxBodyBytes, into one Event per alert, in the
// post's order. Every alert must be valid: a post with one bad alert is
// refused whole (an *InvalidError naming each bad field, such as
// "alerts[2].fingerprint"), a body over the limit with a *TooLargeError.
func DecodeAlertmanager(r io.Reader, via string, limits Limits) ([]Event, error) {
	limits = limits.WithDefaults()
	body, err := readBounded(r, limits.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	return decodeAlertmanager(body, via, limits)
}

func decodeAlertmanager(body []byte, via string, limits Limits) ([]Event, error) {
	var p alertmanagerPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, &InvalidError{Kind: KindAlertmanager, Errors: []FieldError{jsonError("", err)}}
	}
	c := &checker{limits: limits}
	if p.Version != AlertmanagerVersion {
		c.add("version", "must be %q (Alertmanager's webhook payload version 4), got %q", AlertmanagerVersion, clip(p.Version))
		return nil, c.err(KindAlertmanager)
	}
	c.text("externalURL", p.ExternalURL)
	switch {
	case len(p.Alerts) == 0:
		c.add("alerts", "is empty: a post carries at least one alert")
	case len(p.Alerts) > limits.MaxAlerts:
		c.add("alerts", "has %d alerts; at most %d are allowed per post (intake.limits.max_alerts; Alertmanager's max_alerts bounds a post)", len(p.Alerts), limits.MaxAlerts)
	}
	if len(c.errs) > 0 {
		return nil, c.err(KindAlertmanager)
	}
	events := make([]Event, 0, len(p.Alerts))
	for i, raw := range p.Alerts {
		at := "alerts[" + strconv.Itoa(i) + "]"
		var a alertmanagerAlert
		if err := strictObject(raw, &a); err != nil {
			fe := jsonError(at, err)
			c.add(fe.Field, "%s", fe.Message)
			continue
		}
		ev := Event{
			Kind: KindAlertmanager, Via: via,
			Type: a.Labels["alertname"], Source: p.ExternalURL, ID: a.Fingerprint,
			Status: Status(a.Status), Fingerprint: a.Fingerprint,
			Labels: a.Labels, Annotations: a.Annotations, URL: a.GeneratorURL,
		}
		switch ev.Status {
		case StatusFiring, StatusResolved:
		default:
			c.add(at+".status", "must be %q or %q, got %q", StatusFiring, StatusResolved, clip(a.Status))
		}
		if a.Fingerprint == "" {
			c.add(at+".fingerprint", "is required: Alertmanager's fingerprint of the alert (sent by Alertmanager 0.19 and later)")
		} else {
			c.fingerprint(at+".fingerprint", a.Fingerprint)
		}
		c.pairs(at+".labels", a.Labels, true)
		c.pairs(at+".annotations", a.Annotations, false)
		c.text(at+".generatorURL", a.GeneratorURL)
		ev.StartsAt = c.time(at+".startsAt", a.StartsAt)
		ev.EndsAt = c.time(at+".endsAt", a.EndsAt)
		if ev.Labels == nil {
			ev.Labels = map[string]string{}
		}
		if ev.Annotations == nil {
			ev.Annotations = map[string]string{}
		}
		events = append(events, ev)
	}
	if err := c.err(KindAlertmanager); err != nil {
		return nil, err
	}
	return events, nil
}

// time parses an RFC 3339 time; empty and Go's zero time are "not set".
func (c *checker) time(field, v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		c.add(field, "must be an RFC 3339 time such as \"2026-01-02T15:04:05Z\", got %q", clip(v))
		return time.Time{}
	}
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// readBounded reads all of r, refusing more than limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return nil, &TooLargeError{Limit: limit}
		}
		return nil, fmt.Errorf("read the body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return body, nil
}

// strictObject decodes one JSON object into v, refusing anything else.
func strictObject(raw []byte, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}
	return json.Unmarshal(raw, v)
}

var errNotObject = errors.New("not a JSON object")

// jsonError turns an encoding/json error into a FieldError under prefix.
func jsonError(prefix string, err error) FieldError {
	join := func(field string) string {
		switch {
		case prefix == "" && field == "":
			return "body"
		case prefix == "":
			return field
		case field == "":
			return prefix
		}
		return prefix + "." + field
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, errNotObject):
		return FieldError{Field: join(""), Message: "must be a JSON object"}
	case errors.As(err, &typeErr):
		return FieldError{Field: join(typeErr.Field), Message: fmt.Sprintf("must be a %s, got a JSON %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return FieldError{Field: join(""), Message: fmt.Sprintf("is not valid JSON at byte %d: %v", syntaxErr.Offset, err)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Field: join(""), Message: "is cut short; send one whole JSON object"}
	}
	return FieldError{Field: join(""), Message: err.Error()}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "int", "int64":
		return "whole number"
	case "slice":
		return "list"
	case "struct", "map":
		return "object"
	}
	return kind
}
