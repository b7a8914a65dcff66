package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const structuredEvent = `{
  "specversion": "1.0",
  "type": "com.example.checkout.latency",
  "source": "/monitors/checkout",
  "id": "evt-42",
  "subject": "checkout",
  "time": "2026-03-01T10:00:00Z",
  "team": "payments",
  "datacontenttype": "application/json",
  "data": {"labels": {"namespace": "shop-eu", "team": "checkout"}, "annotations": {"summary": "p99 over 2s"}, "status": "firing", "url": "https://grafana.example/d/1", "other": [1, 2]}
}`

func ceRequest(body string, header map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/events/cloudevents", strings.NewReader(body))
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}

func TestDecodeCloudEventStructured(t *testing.T) {
	e, err := DecodeCloudEvent(ceRequest(structuredEvent, map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("/monitors/checkout\x00evt-42"))
	if e.Kind != KindCloudEvent || e.Via != ViaHTTP || e.Type != "com.example.checkout.latency" || e.Source != "/monitors/checkout" ||
		e.ID != "evt-42" || e.Subject != "checkout" || e.Status != StatusFiring || e.URL != "https://grafana.example/d/1" ||
		e.Fingerprint != hex.EncodeToString(sum[:16]) || !e.StartsAt.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("event: %+v", e)
	}
	// Extensions are labels; data.labels win over them.
	if e.Labels["namespace"] != "shop-eu" || e.Labels["team"] != "checkout" || e.Annotations["summary"] != "p99 over 2s" {
		t.Errorf("labels %v, annotations %v", e.Labels, e.Annotations)
	}
}

func TestDecodeCloudEventBinary(t *testing.T) {
	r := ceRequest(`{"labels":{"deployment":"cart"},"status":"resolved","fingerprint":"cart-eu"}`, map[string]string{
		"Content-Type":   "application/json",
		"ce-specversion": "1.0",
		"ce-type":        "com.example.cart.down",
		"ce-source":      "urn:monitor:cart",
		"ce-id":          "7",
		"ce-namespace":   "shop-eu",
	})
	e, err := DecodeCloudEvent(r, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "com.example.cart.down" || e.Status != StatusResolved || e.Fingerprint != "cart-eu" ||
		e.Labels["deployment"] != "cart" || e.Labels["namespace"] != "shop-eu" {
		t.Errorf("event: %+v", e)
	}
	// Data that is not JSON carries no labels but is no error.
	r = ceRequest("plain text", map[string]string{"Content-Type": "text/plain", "ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "1"})
	if e, err := DecodeCloudEvent(r, Limits{}); err != nil || e.Status != StatusFiring || len(e.Labels) != 0 {
		t.Errorf("text data: %+v, %v", e, err)
	}
}

func TestDecodeCloudEventRefuses(t *testing.T) {
	binary := func(extra map[string]string) map[string]string {
		h := map[string]string{"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "1", "Content-Type": "application/json"}
		for k, v := range extra {
			if v == "" {
				delete(h, k)
				continue
			}
			h[k] = v
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
		field  string
	}{
		{"no source", `{}`, binary(map[string]string{"ce-source": ""}), "source"},
		{"no id", `{}`, binary(map[string]string{"ce-id": ""}), "id"},
		{"bad status", `{"status":"pending"}`, binary(nil), "data.status"},
		{"label not a string", `{"labels":{"replicas":3}}`, binary(nil), "data.labels.replicas"},
		{"bad fingerprint", `{"fingerprint":"a b"}`, binary(nil), "data.fingerprint"},
		{"control character in a label value", `{"labels":{"team":"cart\r\nnamespace: kube-system"}}`, binary(nil), "labels.team"},
		{"control character in an extension", `{}`, binary(map[string]string{"ce-team": "cart\x7f"}), "labels.team"},
		{"data not JSON", `{"labels":`, binary(nil), "data"},
		{"structured, not JSON", `{"specversion":`, map[string]string{"Content-Type": CloudEventsMediaType}, "event"},
		{"long subject", `{}`, binary(map[string]string{"ce-subject": strings.Repeat("s", 9000)}), "subject"},
		{"structured without type", `{"specversion":"1.0","source":"s","id":"1"}`, map[string]string{"Content-Type": CloudEventsMediaType}, "type"},
		{"version 0.3", `{"specversion":"0.3","type":"t","source":"s","id":"1"}`, map[string]string{"Content-Type": CloudEventsMediaType}, "specversion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCloudEvent(ceRequest(tc.body, tc.header), Limits{})
			if !hasField(err, tc.field) {
				t.Errorf("got %v, want an error naming %q", err, tc.field)
			}
		})
	}
	for _, h := range []map[string]string{
		{"Content-Type": "application/json"},
		{"Content-Type": "application/cloudevents-batch+json"},
	} {
		if _, err := DecodeCloudEvent(ceRequest(`[]`, h), Limits{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: got %v, want ErrUnsupported", h, err)
		}
	}
	var tooLarge *TooLargeError
	if _, err := DecodeCloudEvent(ceRequest(structuredEvent, map[string]string{"Content-Type": CloudEventsMediaType}), Limits{MaxBodyBytes: 100}); !errors.As(err, &tooLarge) {
		t.Errorf("over the body limit: %v", err)
	}
}

func TestDecodeCloudEventJSON(t *testing.T) {
	e, err := DecodeCloudEventJSON(context.Background(), []byte(structuredEvent), ViaNATS, Limits{})
	if err != nil || e.Via != ViaNATS || e.Labels["namespace"] != "shop-eu" {
		t.Fatalf("%+v, %v", e, err)
	}
	if _, err := DecodeCloudEventJSON(context.Background(), []byte(structuredEvent), ViaNATS, Limits{MaxBodyBytes: 10}); err == nil {
		t.Error("over the body limit: no error")
	}
}

func FuzzCloudEventDecode(f *testing.F) {
	f.Add([]byte(structuredEvent), "")
	f.Add([]byte(`{"labels":{"a":"b"},"status":"resolved"}`), "binary")
	f.Add([]byte(`{"specversion":"1.0","type":"t","source":"s","id":"1","data_base64":"eyJsYWJlbHMiOnt9fQ=="}`), "")
	f.Add([]byte(`{"specversion":"1.0","type":"t","source":"s","id":"1","datacontenttype":"text/plain","data":"x"}`), "")
	f.Add([]byte(`[{"specversion":"1.0"}]`), "batch")
	limits := Limits{MaxBodyBytes: 64 << 10, MaxLabels: 8, MaxNameBytes: 32, MaxValueBytes: 256}
	f.Fuzz(func(t *testing.T, body []byte, mode string) {
		header := map[string]string{"Content-Type": CloudEventsMediaType}
		switch mode {
		case "binary":
			header = map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "1"}
		case "batch":
			header = map[string]string{"Content-Type": "application/cloudevents-batch+json"}
		}
		e, err := DecodeCloudEvent(ceRequest(string(body), header), limits)
		if err != nil {
			var ie *InvalidError
			var tl *TooLargeError
			if !errors.As(err, &ie) && !errors.As(err, &tl) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error of an unexpected type %T: %v", err, err)
			}
			return
		}
		if e.Type == "" || e.Source == "" || e.ID == "" || !fingerprintRE.MatchString(e.Fingerprint) {
			t.Fatalf("accepted an event without type, source, id or a good fingerprint: %+v", e)
		}
		if e.Status != StatusFiring && e.Status != StatusResolved {
			t.Fatalf("status %q", e.Status)
		}
		if len(e.Labels) > limits.MaxLabels || len(e.Annotations) > limits.MaxLabels || len(e.Subject) > limits.MaxValueBytes {
			t.Fatalf("out of bounds: %+v", e)
		}
	})
}
