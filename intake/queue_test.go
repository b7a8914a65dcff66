package intake

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// roundTrip decodes a queued message as the Consumer does.
func roundTrip(t *testing.T, ev Event, limits Limits) Event {
	t.Helper()
	data, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	switch ev.Kind {
	case KindAlertmanager:
		got, err = decodeAlertmanager(data, ev.Via, limits)
	case KindCloudEvent:
		var one Event
		one, err = DecodeCloudEventJSON(context.Background(), data, ev.Via, limits)
		got = []Event{one}
	}
	if err != nil {
		t.Fatalf("the queued message of %+v cannot be read back: %v\n%s", ev, err, data)
	}
	if len(got) != 1 {
		t.Fatalf("%d events read back, want 1", len(got))
	}
	return got[0]
}

func TestEncodeEventRoundTrip(t *testing.T) {
	limits := Limits{}.WithDefaults()
	alerts, err := DecodeAlertmanager(strings.NewReader(alertmanagerPost), ViaHTTP, limits)
	if err != nil {
		t.Fatal(err)
	}
	structured, err := DecodeCloudEventJSON(context.Background(), []byte(`{"specversion":"1.0","type":"com.example.cart.down","source":"urn:m",
		"id":"42","subject":"cart","time":"2026-03-01T10:00:00.5Z","team":"cart","datacontenttype":"application/json",
		"data":{"labels":{"namespace":"shop-eu","html":"<a & b>"},"annotations":{"summary":"cart is down"},"status":"resolved","url":"https://grafana/d/cart"}}`), ViaHTTP, limits)
	if err != nil {
		t.Fatal(err)
	}
	binary := httptestRequest(t, `{"labels":{"namespace":"shop"},"fingerprint":"cart-eu"}`, map[string]string{
		"ce-specversion": "1.0", "ce-type": "com.example.cart.down", "ce-source": "urn:m", "ce-id": "7", "ce-team": "cart", "Content-Type": "application/json"})
	bin, err := DecodeCloudEvent(binary, limits)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range append(alerts, structured, bin) {
		if got := roundTrip(t, ev, limits); !reflect.DeepEqual(got, ev) {
			t.Errorf("read back\n%+v\nwant\n%+v", got, ev)
		}
	}
	if _, err := EncodeEvent(Event{Kind: "email"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown kind: %v, want ErrUnsupported", err)
	}
}

func httptestRequest(t *testing.T, body string, header map[string]string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://intake/v1/events/cloudevents", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}

// Every event an Alertmanager post decodes into is queued as a message
// that decodes back into the same event.
func FuzzEncodeEventRoundTrip(f *testing.F) {
	f.Add([]byte(alertmanagerPost))
	f.Add([]byte(`{"version":"4","externalURL":"http://a<b>","alerts":[{"status":"firing","fingerprint":"a","labels":{"x":"\"}{{\u2028&"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"resolved","fingerprint":"a","endsAt":"2026-01-01T00:00:00.123456789+01:00"}]}`))
	limits := Limits{MaxBodyBytes: 64 << 10, MaxAlerts: 20, MaxLabels: 8, MaxNameBytes: 32, MaxValueBytes: 256}.WithDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := DecodeAlertmanager(bytes.NewReader(body), ViaHTTP, limits)
		if err != nil {
			return
		}
		for _, ev := range events {
			if got := roundTrip(t, ev, Limits{MaxBodyBytes: 1 << 20, MaxAlerts: 1, MaxLabels: 8, MaxNameBytes: 32, MaxValueBytes: 256}); !reflect.DeepEqual(got, ev) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got, ev)
			}
		}
	})
}

func TestQueueSubject(t *testing.T) {
	for _, tc := range []struct {
		filter, queue, want string
	}{
		{"", "", "reins.events.http"},
		{"reins.events.>", "", "reins.events.http"},
		{"events", "", "events"},
		{"events.*.x", "events.a.x", "events.a.x"},
		{"reins.events.>", "reins.events.http.alertmanager", "reins.events.http.alertmanager"},
		{"events.*.x", "", ""},
		{"reins.events.>", "reins.events", ""},
		{"reins.events.>", "other.events.http", ""},
		{"reins.events.>", "reins.events.*", ""},
		{"reins.events.>", "reins..events", ""},
	} {
		got, err := QueueSubject(tc.filter, tc.queue)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("QueueSubject(%q, %q) = %q, %v; want %q", tc.filter, tc.queue, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "intake.nats.queue_subject") {
			t.Errorf("error %q does not name intake.nats.queue_subject", err)
		}
	}
}

// Events queued through Queue reach the Consumer, which starts one
// remediation per incident; an identical event is stored once.
func TestQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, logger := embeddedNATS(ctx, t)
	d, tmp, rec := dispatcher(t)
	opts := ConsumerOptions{URL: srv.URL, Stream: "EVENTS", Subject: "events.>", Durable: "test", CreateStream: true, Logger: logger}
	if _, err := NewQueue(ctx, opts); err == nil || !strings.Contains(err.Error(), "create_stream") {
		t.Errorf("a queue before its stream exists: %v, want an error naming create_stream", err)
	}
	c, err := NewConsumer(ctx, opts, d)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	other := opts
	other.QueueSubject = "elsewhere"
	if _, err := NewQueue(ctx, other); err == nil {
		t.Error("a queue subject outside the consumer's filter: no error")
	}
	q, err := NewQueue(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Subject() != "events.http" {
		t.Errorf("subject %s, want events.http", q.Subject())
	}

	alerts, err := DecodeAlertmanager(strings.NewReader(alertmanagerPost), ViaHTTP, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Encode(alerts)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Header.Get(KindHeader) != string(KindAlertmanager) || msgs[0].Header.Get(ViaHeader) != ViaHTTP || msgs[0].Header.Get(jetstream.MsgIDHeader) == "" {
		t.Fatalf("messages %+v", msgs)
	}
	dup, err := q.Publish(ctx, msgs)
	if err != nil || dup[0] || dup[1] {
		t.Fatalf("first publish: duplicates %v, %v", dup, err)
	}
	again, err := q.Encode(alerts[:1])
	if err != nil {
		t.Fatal(err)
	}
	if dup, err := q.Publish(ctx, again); err != nil || !dup[0] {
		t.Errorf("the same event again: duplicate %v, %v; want a duplicate", dup, err)
	}
	wait(t, "both messages handled", func() bool { return len(rec.results()) == 2 })
	got := rec.results()
	if !(got[0] == ResultStarted && got[1] == ResultUnmatched || got[0] == ResultUnmatched && got[1] == ResultStarted) || tmp.startCount() != 1 {
		t.Errorf("records %v, %d started; want one started, one unmatched", got, tmp.startCount())
	}
	rec.mu.Lock()
	for _, o := range rec.recs {
		if o.Event.Via != ViaHTTP {
			t.Errorf("recorded via %q, want %q", o.Event.Via, ViaHTTP)
		}
	}
	rec.mu.Unlock()

	small := &Queue{subject: q.subject, stream: q.stream, limits: Limits{MaxBodyBytes: 100}, nc: q.nc, js: q.js}
	var tooLarge *TooLargeError
	if _, err := small.Encode(alerts); !errors.As(err, &tooLarge) {
		t.Errorf("a message over max_body_bytes: %v, want a *TooLargeError", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
