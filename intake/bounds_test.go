package intake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reins-dev/reins/remediation"
)

// oversizedPost is an Alertmanager post that passes every default limit:
// one alert no trigger takes, with 64 labels of 8 KiB of '<' (which
// encoding/json writes as six bytes each), and long annotations.
func oversizedPost() string {
	labels := map[string]string{"alertname": "Noise"}
	for i := range 63 {
		labels[fmt.Sprintf("l%02d", i)] = strings.Repeat("<", 8192)
	}
	data, _ := marshalJSON(map[string]any{
		"version": "4", "externalURL": "http://am/" + strings.Repeat("<", 8000),
		"alerts": []map[string]any{{"status": "firing", "fingerprint": "big", "labels": labels,
			"annotations": map[string]string{"summary": strings.Repeat("<", 8192)}}},
	})
	return string(data)
}

func decodeOversized(t *testing.T) Event {
	t.Helper()
	evs, err := DecodeAlertmanager(strings.NewReader(oversizedPost()), ViaHTTP, Limits{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("the oversized post is refused (%v): the test needs one that passes the limits", err)
	}
	return evs[0]
}

// The record of any event is bounded: encoded as the audit sink encodes
// it, it stays far under the NATS audit sink's 1 MB payload.
func TestRecordOfAnEventIsBounded(t *testing.T) {
	ev := decodeOversized(t)
	d, _, rec := dispatcher(t)
	o, err := d.Dispatch(context.Background(), ev)
	if err != nil || o.Result != ResultUnmatched || len(rec.recs) != 1 {
		t.Fatalf("dispatch: %+v, %v; %d records", o, err, len(rec.recs))
	}
	data, err := remediation.AuditData(rec.recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 128<<10 {
		t.Errorf("the record's data is %d bytes; want at most 128 KiB", len(data))
	}
	got := rec.recs[0].Event
	if !got.Truncated || got.OmittedLabels == 0 || len(got.Labels)+got.OmittedLabels != 64 || got.Labels[0].Name != "alertname" {
		t.Errorf("summary: truncated %v, %d labels kept, %d left out; want it to say what it left out", got.Truncated, len(got.Labels), got.OmittedLabels)
	}
	if v := got.Labels[1].Value; len(v) > maxSummaryValueBytes || !strings.HasSuffix(v, "…") {
		t.Errorf("a long label value is kept as %d bytes %.20q…", len(v), v)
	}
	if len(got.Source) > maxSummaryTextBytes || !strings.HasPrefix(got.Source, "http://am/<") {
		t.Errorf("source kept as %d bytes", len(got.Source))
	}
	// A small event is kept whole.
	small := ev
	small.Source, small.Labels = "http://am", map[string]string{"alertname": "Noise", "team": "cart"}
	if s := small.Summary(); s.Truncated || s.OmittedLabels != 0 || len(s.Labels) != 2 {
		t.Errorf("a small event's summary: %+v", s)
	}
	// Cuts keep characters whole.
	if v, cut := truncate(strings.Repeat("é", 10), 8); !cut || v != "éé…" {
		t.Errorf("truncate: %q %v", v, cut)
	}
}

// Field errors are bounded in the record, not in the outcome.
func TestRecordOfManyErrorsIsBounded(t *testing.T) {
	o := Outcome{Result: ResultRefused, Reason: strings.Repeat("r", 5000)}
	for i := range 50 {
		o.Errors = append(o.Errors, FieldError{Field: fmt.Sprintf("alerts[%d].labels.x", i), Message: strings.Repeat("m", 1000)})
	}
	b := o.bounded()
	if len(b.Errors) != maxRecordErrors || b.Errors[maxRecordErrors-1].Message != "41 more not recorded" ||
		len(b.Errors[0].Message) > maxRecordMessageBytes || len(b.Reason) > maxRecordReasonBytes {
		t.Errorf("bounded: %d errors, last %+v, reason %d bytes", len(b.Errors), b.Errors[len(b.Errors)-1], len(b.Reason))
	}
	if len(o.Errors) != 50 || len(o.Reason) != 5000 {
		t.Error("bounded changed the outcome the sender is answered with")
	}
}

// An audit sink that refuses a record for its size gets the event's short
// record instead; one that refuses even that is a permanent failure.
func TestRecordTooLargeForTheSink(t *testing.T) {
	ev := decodeOversized(t)
	d, _, rec := dispatcher(t)
	rec.maxPayload = 4 << 10
	o, err := d.Dispatch(context.Background(), ev)
	if err != nil || o.Result != ResultUnmatched || len(rec.recs) != 1 {
		t.Fatalf("dispatch: %+v, %v; %d records", o, err, len(rec.recs))
	}
	short := rec.recs[0]
	if short.Event.Fingerprint != "big" || short.Event.Type != "Noise" || len(short.Event.Labels) != 0 || short.Event.OmittedLabels != 64 ||
		!short.Event.Truncated || !strings.Contains(short.Reason, "refused by the audit sink as too large") {
		t.Errorf("short record %+v", short)
	}

	rec.maxPayload = 10
	_, err = d.Dispatch(context.Background(), ev)
	var rerr *RecordError
	if !errors.As(err, &rerr) || !rerr.Permanent || !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("a record the sink never takes: %v, want a permanent *RecordError", err)
	}
	rec.maxPayload, rec.fail = 0, true
	if _, err = d.Dispatch(context.Background(), ev); !errors.As(err, &rerr) || rerr.Permanent {
		t.Errorf("a sink that is down: %v, want a *RecordError that is not permanent", err)
	}
}

// consumerEnv runs a Consumer of d on an embedded NATS server.
type consumerEnv struct {
	js   jetstream.JetStream
	info func() *jetstream.ConsumerInfo
}

func runConsumer(ctx context.Context, t *testing.T, d *Dispatcher, ackWait time.Duration) consumerEnv {
	t.Helper()
	srv, logger := embeddedNATS(ctx, t)
	c, err := NewConsumer(ctx, ConsumerOptions{URL: srv.URL, Stream: "EVENTS", Subject: "events.>", Durable: "test",
		CreateStream: true, AckWait: ackWait, Logger: logger}, d)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the consumer did not stop")
		}
	})
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return consumerEnv{js: js, info: func() *jetstream.ConsumerInfo {
		t.Helper()
		cons, err := js.Consumer(ctx, "EVENTS", "test")
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ci
	}}
}

func (e consumerEnv) publish(ctx context.Context, t *testing.T, data string, kind Kind) {
	t.Helper()
	msg := nats.NewMsg("events.test")
	msg.Data = []byte(data)
	msg.Header.Set(KindHeader, string(kind))
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// waitDone waits until every message up to seq is acknowledged or terminated.
func (e consumerEnv) waitDone(t *testing.T, seq uint64, within time.Duration) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ci := e.info()
		if ci.AckFloor.Stream >= seq && ci.NumAckPending == 0 {
			return ci
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: ack floor %d, %d pending ack, %d redelivered, %d deliveries; want message %d done",
				within, ci.AckFloor.Stream, ci.NumAckPending, ci.NumRedelivered, ci.Delivered.Consumer, seq)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A message whose record the audit sink can never take is terminated once,
// not sent again up to MaxDeliver times.
func TestConsumerTerminatesAMessageItCannotRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, _, rec := dispatcher(t)
	rec.maxPayload = 10
	e := runConsumer(ctx, t, d, 5*time.Second)
	e.publish(ctx, t, `{"version":"4","alerts":[{"status":"firing","fingerprint":"noise","labels":{"alertname":"Noise"}}]}`, KindAlertmanager)
	ci := e.waitDone(t, 1, 10*time.Second)
	if ci.NumRedelivered != 0 || ci.Delivered.Consumer != 1 {
		t.Errorf("%d deliveries, %d redelivered; want the message terminated on its first", ci.Delivered.Consumer, ci.NumRedelivered)
	}
}

// A message of many events on a slow Temporal is handled in one delivery:
// the consumer tells the server before each event that it is still working,
// and gives each event its own time.
func TestConsumerKeepsASlowMessageInHand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, tmp, _ := dispatcher(t)
	tmp.delay = 300 * time.Millisecond
	e := runConsumer(ctx, t, d, time.Second)
	var alerts []string
	for i := range 8 {
		alerts = append(alerts, fmt.Sprintf(`{"status":"firing","fingerprint":"slow-%d","labels":{"alertname":"KubeDeploymentReplicasMismatch","severity":"critical","namespace":"shop-eu","deployment":"checkout"},"annotations":{"summary":"short"}}`, i))
	}
	e.publish(ctx, t, `{"version":"4","alerts":[`+strings.Join(alerts, ",")+`]}`, KindAlertmanager)
	ci := e.waitDone(t, 1, 20*time.Second)
	if n := tmp.startCount(); n != 8 || ci.NumRedelivered != 0 || ci.Delivered.Consumer != 1 {
		t.Errorf("%d starts, %d deliveries, %d redelivered; want 8 starts in one delivery (8 × 300 ms against an AckWait of 1 s)",
			n, ci.Delivered.Consumer, ci.NumRedelivered)
	}
}

// One event that Temporal never answers is given up within its own time,
// and its message sent again.
func TestConsumerBoundsEachEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, tmp, _ := dispatcher(t)
	tmp.delay = time.Hour
	e := runConsumer(ctx, t, d, time.Second)
	e.publish(ctx, t, alertmanagerPost, KindAlertmanager)
	deadline := time.Now().Add(10 * time.Second)
	for e.info().Delivered.Consumer < 2 {
		if time.Now().After(deadline) {
			t.Fatal("a message whose event never returns is not sent again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := tmp.startCount(); n != 0 {
		t.Errorf("%d starts", n)
	}
}
