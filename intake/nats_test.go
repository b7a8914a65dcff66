package intake

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reins-dev/reins/devstack"
)

func ceJSON(id, team string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","type":"com.example.cart.down","source":"urn:test","id":%q,
		"data":{"labels":{"team":%q,"namespace":"shop-eu","app.kubernetes.io/name":"cart"}}}`, id, team)
}

// embeddedNATS starts a NATS server with JetStream for the test, and the
// logger its clients use.
func embeddedNATS(ctx context.Context, t *testing.T) (*devstack.NATS, *slog.Logger) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, logger
}

func TestConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, logger := embeddedNATS(ctx, t)
	d, tmp, rec := dispatcher(t)
	tmp.failNext = 2 // the first message is handled on its third delivery
	opts := ConsumerOptions{URL: srv.URL, Stream: "EVENTS", Subject: "events.>", Durable: "test", CreateStream: true, AckWait: 5 * time.Second, Logger: logger}
	c, err := NewConsumer(ctx, opts, d)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(data []byte, kind Kind) {
		t.Helper()
		msg := nats.NewMsg("events.test")
		msg.Data = data
		if kind != "" {
			msg.Header.Set(KindHeader, string(kind))
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	publish(ceJSON("1", "cart"), "")
	publish(ceJSON("1", "cart"), KindCloudEvent) // the same event again: joins
	publish([]byte(alertmanagerPost), KindAlertmanager)
	publish(ceJSON("2", ""), "") // no team: no trigger
	publish([]byte(`{"specversion":"1.0"}`), "")
	publish([]byte(`{}`), "email")

	want := []Result{ResultStarted, ResultDuplicate, ResultStarted, ResultUnmatched, ResultRefused, ResultRefused}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := rec.results()
		slices.Sort(got)
		w := slices.Clone(want)
		// The Alertmanager post's second alert matches no trigger.
		w = append(w, ResultUnmatched)
		slices.Sort(w)
		if slices.Equal(got, w) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records %v, want %v", got, w)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := tmp.startCount(); n != 2 {
		t.Errorf("%d remediations started, want 2 (the CloudEvent, the firing alert)", n)
	}
	info, err := js.Consumer(ctx, "EVENTS", "test")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := info.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumAckPending != 0 || ci.NumPending != 0 || ci.NumRedelivered != 0 || ci.AckFloor.Stream != 6 {
		t.Errorf("consumer: %d pending ack, %d pending, %d redelivered, ack floor %d; want every message of 6 acknowledged or terminated",
			ci.NumAckPending, ci.NumPending, ci.NumRedelivered, ci.AckFloor.Stream)
	}
	if ci.Delivered.Consumer < 8 {
		t.Errorf("%d deliveries, want at least 8 (the first message three times)", ci.Delivered.Consumer)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the consumer did not stop")
	}
}

func TestNewConsumerNeedsStream(t *testing.T) {
	ctx := context.Background()
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	d, _, _ := dispatcher(t)
	if _, err := NewConsumer(ctx, ConsumerOptions{URL: srv.URL, Stream: "MISSING"}, d); err == nil {
		t.Error("a missing stream without create_stream: no error")
	}
	if _, err := NewConsumer(ctx, ConsumerOptions{}, d); err == nil {
		t.Error("no URL: no error")
	}
}
