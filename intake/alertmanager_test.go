package intake

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// alertmanagerPost is a post as Alertmanager 0.28 sends it.
const alertmanagerPost = `{
  "receiver": "reins",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop-eu", "deployment": "checkout", "severity": "critical"},
      "annotations": {"summary": "checkout has 1/3 replicas"},
      "startsAt": "2026-03-01T10:00:00.123Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
      "fingerprint": "c7a5d9e6f0b1a2c3"
    },
    {
      "status": "resolved",
      "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop-us", "pod": "cart-0"},
      "annotations": {},
      "startsAt": "2026-03-01T09:00:00Z",
      "endsAt": "2026-03-01T09:30:00Z",
      "generatorURL": "",
      "fingerprint": "0123456789abcdef"
    }
  ],
  "groupLabels": {"alertname": "KubeDeploymentReplicasMismatch"},
  "commonLabels": {},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"KubeDeploymentReplicasMismatch\"}",
  "truncatedAlerts": 0
}`

func TestDecodeAlertmanager(t *testing.T) {
	events, err := DecodeAlertmanager(strings.NewReader(alertmanagerPost), ViaHTTP, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want one per alert (2)", len(events))
	}
	e := events[0]
	if e.Kind != KindAlertmanager || e.Via != ViaHTTP || e.Type != "KubeDeploymentReplicasMismatch" || e.Status != StatusFiring ||
		e.Fingerprint != "c7a5d9e6f0b1a2c3" || e.Source != "http://alertmanager:9093" || e.Labels["namespace"] != "shop-eu" ||
		e.Annotations["summary"] != "checkout has 1/3 replicas" || e.URL != "http://prometheus:9090/graph?g0.expr=x" {
		t.Errorf("first event: %+v", e)
	}
	if !e.StartsAt.Equal(time.Date(2026, 3, 1, 10, 0, 0, 123e6, time.UTC)) || !e.EndsAt.IsZero() {
		t.Errorf("first event times: %s, %s (want the zero end time as unset)", e.StartsAt, e.EndsAt)
	}
	r := events[1]
	if r.Status != StatusResolved || r.Fingerprint != "0123456789abcdef" || !r.EndsAt.Equal(time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)) || r.Annotations == nil {
		t.Errorf("second event: %+v", r)
	}
}

func TestDecodeAlertmanagerRefuses(t *testing.T) {
	alert := func(fields string) string {
		return `{"version":"4","externalURL":"http://am","alerts":[{"status":"firing","labels":{"a":"b"},"fingerprint":"f1"},` + fields + `]}`
	}
	for _, tc := range []struct {
		name, body string
		field      string
	}{
		{"version 3", `{"version":"3","alerts":[]}`, "version"},
		{"no version", `{"alerts":[{"status":"firing","fingerprint":"x"}]}`, "version"},
		{"not JSON", `{"version":`, "body"},
		{"an array", `[]`, "body"},
		{"no alerts", `{"version":"4","alerts":[]}`, "alerts"},
		{"alerts not a list", `{"version":"4","alerts":{}}`, "alerts"},
		{"bad status", alert(`{"status":"pending","fingerprint":"f2"}`), "alerts[1].status"},
		{"no fingerprint", alert(`{"status":"firing"}`), "alerts[1].fingerprint"},
		{"fingerprint with a slash", alert(`{"status":"firing","fingerprint":"a/b"}`), "alerts[1].fingerprint"},
		{"label not a string", alert(`{"status":"firing","fingerprint":"f2","labels":{"replicas":3}}`), "alerts[1].labels.replicas"},
		{"alert not an object", alert(`"x"`), "alerts[1]"},
		{"bad time", alert(`{"status":"firing","fingerprint":"f2","startsAt":"yesterday"}`), "alerts[1].startsAt"},
		{"control character", alert(`{"status":"firing","fingerprint":"f2","generatorURL":"a\u0000b"}`), "alerts[1].generatorURL"},
		{"empty label name", alert(`{"status":"firing","fingerprint":"f2","labels":{"":"x"}}`), "alerts[1].labels"},
		{"control character in a label value", alert(`{"status":"firing","fingerprint":"f2","labels":{"severity":"critical\nnamespace=kube-system"}}`), "alerts[1].labels.severity"},
		{"escape in a label value", alert(`{"status":"firing","fingerprint":"f2","labels":{"team":"cart\u001b[31m"}}`), "alerts[1].labels.team"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeAlertmanager(strings.NewReader(tc.body), ViaHTTP, Limits{})
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an *InvalidError", err)
			}
			if ie.Errors[0].Field != tc.field {
				t.Errorf("field %q (%v), want %q", ie.Errors[0].Field, err, tc.field)
			}
		})
	}
}

func TestDecodeAlertmanagerLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"version":"4","alerts":[`)
	for i := range 3 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","fingerprint":"f%d","labels":{"a":"1","b":"2","c":"3"}}`, i)
	}
	b.WriteString(`]}`)
	body := b.String()

	if _, err := DecodeAlertmanager(strings.NewReader(body), ViaHTTP, Limits{MaxAlerts: 2}); !hasField(err, "alerts") {
		t.Errorf("3 alerts over a limit of 2: %v", err)
	}
	if _, err := DecodeAlertmanager(strings.NewReader(body), ViaHTTP, Limits{MaxLabels: 2}); !hasField(err, "alerts[0].labels") {
		t.Errorf("3 labels over a limit of 2: %v", err)
	}
	if _, err := DecodeAlertmanager(strings.NewReader(strings.Replace(body, `"1"`, `"`+strings.Repeat("x", 20)+`"`, 1)), ViaHTTP, Limits{MaxValueBytes: 10}); !hasField(err, "alerts[0].labels.a") {
		t.Errorf("a 20-byte value over a limit of 10: %v", err)
	}
	var tooLarge *TooLargeError
	if _, err := DecodeAlertmanager(strings.NewReader(body), ViaHTTP, Limits{MaxBodyBytes: int64(len(body) - 1)}); !errors.As(err, &tooLarge) {
		t.Errorf("a body one byte over the limit: %v, want a *TooLargeError", err)
	}
	if _, err := DecodeAlertmanager(strings.NewReader(body), ViaHTTP, Limits{MaxBodyBytes: int64(len(body))}); err != nil {
		t.Errorf("a body at the limit: %v", err)
	}
	// The limit of http.MaxBytesReader is reported the same way.
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, ioNopCloser{strings.NewReader(body)}, 10)
	if _, err := DecodeAlertmanager(r, ViaHTTP, Limits{}); !errors.As(err, &tooLarge) {
		t.Errorf("through http.MaxBytesReader: %v, want a *TooLargeError", err)
	}
}

type ioNopCloser struct{ *strings.Reader }

func (ioNopCloser) Close() error { return nil }

func hasField(err error, field string) bool {
	var ie *InvalidError
	if !errors.As(err, &ie) {
		return false
	}
	for _, fe := range ie.Errors {
		if fe.Field == field {
			return true
		}
	}
	return false
}

func FuzzAlertmanagerDecode(f *testing.F) {
	f.Add([]byte(alertmanagerPost))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","fingerprint":"a","labels":{"x":"\"}{{"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":[null,{}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"resolved","fingerprint":"a","endsAt":"2026-01-01T00:00:00+01:00"}]}`))
	f.Add([]byte(`{"version":4}`))
	limits := Limits{MaxBodyBytes: 64 << 10, MaxAlerts: 20, MaxLabels: 8, MaxNameBytes: 32, MaxValueBytes: 256}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := DecodeAlertmanager(bytes.NewReader(body), ViaNATS, limits)
		if err != nil {
			var ie *InvalidError
			var tl *TooLargeError
			if !errors.As(err, &ie) && !errors.As(err, &tl) {
				t.Fatalf("error of an unexpected type %T: %v", err, err)
			}
			if ie != nil && (len(ie.Errors) == 0 || ie.Errors[0].Field == "") {
				t.Fatalf("an invalid payload without a named field: %v", err)
			}
			return
		}
		if len(events) == 0 || len(events) > limits.MaxAlerts {
			t.Fatalf("%d events", len(events))
		}
		for _, e := range events {
			if !fingerprintRE.MatchString(e.Fingerprint) || (e.Status != StatusFiring && e.Status != StatusResolved) {
				t.Fatalf("accepted a bad event: %+v", e)
			}
			if len(e.Labels) > limits.MaxLabels || len(e.Annotations) > limits.MaxLabels || e.Labels == nil || e.Annotations == nil {
				t.Fatalf("labels or annotations out of bounds: %+v", e)
			}
			for k, v := range e.Labels {
				if k == "" || len(k) > limits.MaxNameBytes || len(v) > limits.MaxValueBytes {
					t.Fatalf("label %q=%q out of bounds", k, v)
				}
			}
		}
	})
}

func TestDecodeAlertmanagerLongLabelName(t *testing.T) {
	body := `{"version":"4","alerts":[{"status":"firing","fingerprint":"f","labels":{"abcdefghij":"v"}}]}`
	if _, err := DecodeAlertmanager(strings.NewReader(body), ViaHTTP, Limits{MaxNameBytes: 4}); !hasField(err, "alerts[0].labels.abcdefghij…") {
		t.Errorf("a 10-byte name over a limit of 4: %v", err)
	}
}

// Annotations are descriptions: line breaks and tabs in their values are kept.
func TestDecodeAlertmanagerAnnotationsMayBreakLines(t *testing.T) {
	body := `{"version":"4","alerts":[{"status":"firing","fingerprint":"f1","labels":{"a":"b"},
		"annotations":{"description":"line one\n\tline two"}}]}`
	evs, err := DecodeAlertmanager(strings.NewReader(body), ViaHTTP, Limits{})
	if err != nil || len(evs) != 1 || evs[0].Annotations["description"] != "line one\n\tline two" {
		t.Fatalf("got %+v, %v", evs, err)
	}
}
