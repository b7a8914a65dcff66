package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// CloudEventsMediaType is the content type of a CloudEvent in structured JSON mode.
const CloudEventsMediaType = "application/cloudevents+json"

// cloudEventData is what reins reads from a CloudEvent's data, when it is a
// JSON object; other members are ignored:
//
//	{"labels": {"namespace": "shop"}, "annotations": {"summary": "…"},
//	 "status": "firing", "fingerprint": "checkout-latency", "url": "https://…"}
type cloudEventData struct {
	Labels      stringMap `json:"labels"`
	Annotations stringMap `json:"annotations"`
	Status      string    `json:"status"`
	Fingerprint string    `json:"fingerprint"`
	URL         string    `json:"url"`
}

// DecodeCloudEvent reads one CloudEvents 1.0 event from an HTTP request, in
// binary mode (ce-* headers, the data as the body) or structured mode
// (Content-Type: application/cloudevents+json), with the CloudEvents SDK.
// The body is read up to limits.MaxBodyBytes.
//
// The event's labels are its extension attributes (as strings), overridden
// by data.labels when the data is a JSON object; its annotations are
// data.annotations; its status is data.status ("firing", the default, or
// "resolved"); its fingerprint is data.fingerprint, or else the first 32 hex
// digits of the SHA-256 of its source and id. Send the same
// data.fingerprint in the events of one incident, so that they dedupe and a
// resolved event reaches the remediation.
func DecodeCloudEvent(r *http.Request, limits Limits) (Event, error) {
	limits = limits.WithDefaults()
	body, err := readBounded(r.Body, limits.MaxBodyBytes)
	if err != nil {
		return Event{}, err
	}
	return decodeCloudEvent(r.Context(), r.Header, body, ViaHTTP, limits)
}

// DecodeCloudEventJSON reads one CloudEvent in structured JSON mode, as
// DecodeCloudEvent does (a NATS message's data, for example).
func DecodeCloudEventJSON(ctx context.Context, data []byte, via string, limits Limits) (Event, error) {
	limits = limits.WithDefaults()
	if int64(len(data)) > limits.MaxBodyBytes {
		return Event{}, &TooLargeError{Limit: limits.MaxBodyBytes}
	}
	return decodeCloudEvent(ctx, http.Header{"Content-Type": {CloudEventsMediaType}}, data, via, limits)
}

func decodeCloudEvent(ctx context.Context, header http.Header, body []byte, via string, limits Limits) (Event, error) {
	msg := cehttp.NewMessage(header, io.NopCloser(bytes.NewReader(body)))
	switch msg.ReadEncoding() {
	case binding.EncodingBatch:
		return Event{}, fmt.Errorf("%w: batched CloudEvents (%s); send one event per request", ErrUnsupported, header.Get("Content-Type"))
	case binding.EncodingUnknown:
		return Event{}, fmt.Errorf("%w: not a CloudEvent; send binary mode (ce-specversion, ce-type, ce-source and ce-id headers) or structured mode (Content-Type: %s)", ErrUnsupported, CloudEventsMediaType)
	}
	e, err := binding.ToEvent(ctx, msg)
	if err != nil {
		return Event{}, &InvalidError{Kind: KindCloudEvent, Errors: []FieldError{{Field: "event", Message: "cannot be read: " + err.Error()}}}
	}
	return fromCloudEvent(e, via, limits)
}

func fromCloudEvent(e *event.Event, via string, limits Limits) (Event, error) {
	c := &checker{limits: limits}
	if err := e.Validate(); err != nil {
		var verr event.ValidationError
		if errors.As(err, &verr) {
			for _, k := range slices.Sorted(maps.Keys(verr)) {
				c.add(k, "%v", verr[k])
			}
		} else {
			c.add("event", "%v", err)
		}
		return Event{}, c.err(KindCloudEvent)
	}
	if v := e.SpecVersion(); v != event.CloudEventsVersionV1 {
		c.add("specversion", "must be %q, got %q", event.CloudEventsVersionV1, clip(v))
		return Event{}, c.err(KindCloudEvent)
	}
	ev := Event{
		Kind: KindCloudEvent, Via: via,
		Type: e.Type(), Source: e.Source(), ID: e.ID(), Subject: e.Subject(),
		Status: StatusFiring, StartsAt: e.Time().UTC(),
		Labels: map[string]string{}, Annotations: map[string]string{},
	}
	c.text("type", ev.Type)
	c.text("source", ev.Source)
	c.text("id", ev.ID)
	c.text("subject", ev.Subject)
	exts := e.Extensions()
	if len(exts) > limits.MaxLabels {
		c.add("extensions", "has %d extension attributes; at most %d are allowed (intake.limits.max_labels)", len(exts), limits.MaxLabels)
	} else {
		for name, v := range exts {
			s, err := types.Format(v)
			if err != nil {
				c.add(name, "is an extension attribute reins cannot read as text: %v", err)
				continue
			}
			ev.Labels[name] = s
		}
	}
	if data := e.Data(); len(data) > 0 && isJSON(e.DataMediaType()) && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		var d cloudEventData
		if err := strictObject(data, &d); err != nil {
			fe := jsonError("data", err)
			c.add(fe.Field, "%s", fe.Message)
		}
		maps.Copy(ev.Labels, d.Labels)
		maps.Copy(ev.Annotations, d.Annotations)
		switch Status(d.Status) {
		case "":
		case StatusFiring, StatusResolved:
			ev.Status = Status(d.Status)
		default:
			c.add("data.status", "must be %q or %q, got %q", StatusFiring, StatusResolved, clip(d.Status))
		}
		if d.Fingerprint != "" {
			c.fingerprint("data.fingerprint", d.Fingerprint)
			ev.Fingerprint = d.Fingerprint
		}
		c.text("data.url", d.URL)
		ev.URL = d.URL
	}
	c.pairs("labels", ev.Labels, true)
	c.pairs("data.annotations", ev.Annotations, false)
	if ev.Fingerprint == "" {
		sum := sha256.Sum256([]byte(ev.Source + "\x00" + ev.ID))
		ev.Fingerprint = hex.EncodeToString(sum[:16])
	}
	if err := c.err(KindCloudEvent); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// isJSON reports whether a data media type is JSON; none means JSON (the
// CloudEvents JSON format's default).
func isJSON(mediaType string) bool {
	if mediaType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
