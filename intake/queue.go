package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Queue is the HTTP doors' queued delivery: it puts events on the intake's
// JetStream stream, where the Consumer takes them like any other message
// and starts their remediations. Publish returns once JetStream stored
// every message (its PubAck), so an event whose post was answered is never
// lost; starting exactly one remediation per incident stays with the
// Consumer and Temporal's workflow ID, as for every message.
//
// Each event is its own message, in a format the Consumer reads: a
// single-alert Alertmanager payload (KindHeader "alertmanager") or a
// CloudEvent in structured JSON mode, with ViaHeader "http" and a
// Nats-Msg-Id that is a hash of the message: an event identical to one
// stored within the stream's duplicate window (a sender's retry, the same
// alert from both Alertmanagers of an HA pair, a post sent again after a
// 503) is stored once.
type Queue struct {
	subject string
	stream  string
	limits  Limits
	nc      *nats.Conn
	js      jetstream.JetStream
}

// Bounds of the queue's publishing.
const (
	// queueAckTimeout bounds the wait for JetStream's PubAck of one message.
	queueAckTimeout = 10 * time.Second
	// queueMaxPending bounds the messages awaiting their PubAck.
	queueMaxPending = 4096
	// natsHeaderRoom is what a queued message's headers take of the
	// server's max_payload, at most.
	natsHeaderRoom = 512
)

// NewQueue connects to opts.URL and checks that opts.Stream takes the
// queue's subject (see ConsumerOptions.QueueSubject). The stream must
// exist: make the Consumer first, which creates it when CreateStream.
func NewQueue(ctx context.Context, opts ConsumerOptions) (*Queue, error) {
	opts = opts.WithDefaults()
	if opts.URL == "" {
		return nil, errors.New("intake queue: no URL (intake.nats.url): queued delivery needs the intake's NATS")
	}
	subject, err := QueueSubject(opts.Subject, opts.QueueSubject)
	if err != nil {
		return nil, err
	}
	nc, err := dial(opts, "reins-intake-queue")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(queueAckTimeout), jetstream.WithPublishAsyncMaxPending(queueMaxPending))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("intake queue: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := js.StreamNameBySubject(setup, subject)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		err = fmt.Errorf("intake queue: no stream takes subject %s: create stream %s with it, or set intake.nats.create_stream", subject, opts.Stream)
	case err != nil:
		err = fmt.Errorf("intake queue: find the stream of subject %s: %w", subject, err)
	case stream != opts.Stream:
		err = fmt.Errorf("intake queue: subject %s belongs to stream %s, not %s (intake.nats.stream): set intake.nats.queue_subject to a subject of %s", subject, stream, opts.Stream, opts.Stream)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Queue{subject: subject, stream: opts.Stream, limits: opts.Limits, nc: nc, js: js}, nil
}

// Subject is the subject the queue publishes to.
func (q *Queue) Subject() string { return q.subject }

// Encode makes the messages that queue events, one per event, in order.
// A message larger than Limits.MaxBodyBytes or than the NATS server takes
// (encoding can grow a value its sender escaped less) is a *TooLargeError:
// then queue none of the events.
func (q *Queue) Encode(events []Event) ([]*nats.Msg, error) {
	limit := min(q.limits.MaxBodyBytes, q.nc.MaxPayload()-natsHeaderRoom)
	msgs := make([]*nats.Msg, len(events))
	for i, ev := range events {
		data, err := EncodeEvent(ev)
		if err != nil {
			return nil, err
		}
		if int64(len(data)) > limit {
			return nil, &TooLargeError{Limit: limit}
		}
		msg := nats.NewMsg(q.subject)
		msg.Data = data
		msg.Header.Set(KindHeader, string(ev.Kind))
		if ev.Via == ViaHTTP {
			msg.Header.Set(ViaHeader, ViaHTTP)
		}
		msg.Header.Set(jetstream.MsgIDHeader, messageID(ev.Kind, data))
		msgs[i] = msg
	}
	return msgs, nil
}

// Publish queues msgs (from Encode) and returns once JetStream stored
// each: duplicate[i] reports that msgs[i] is identical to a message stored
// within the stream's duplicate window, which JetStream kept instead. An
// error means some may not be stored: publish them all again, which is
// safe, since those stored are then duplicates (and a message handled
// twice joins its remediation).
func (q *Queue) Publish(ctx context.Context, msgs []*nats.Msg) (duplicate []bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, queueAckTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := q.js.PublishMsgAsync(m, jetstream.WithExpectStream(q.stream))
		if err != nil {
			return nil, fmt.Errorf("intake queue: publish to %s: %w", q.subject, err)
		}
		futures[i] = f
	}
	duplicate = make([]bool, len(msgs))
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			duplicate[i] = ack.Duplicate
		case err := <-f.Err():
			return nil, fmt.Errorf("intake queue: stream %s did not store the event: %w", q.stream, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("intake queue: stream %s did not acknowledge the event: %w", q.stream, ctx.Err())
		}
	}
	return duplicate, nil
}

// Close waits for the PubAcks in flight and disconnects.
func (q *Queue) Close() {
	if err := q.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		q.nc.Close()
	}
}

// messageID is a queued message's Nats-Msg-Id: a hash of what it holds.
func messageID(kind Kind, data []byte) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(data)
	return "reins-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// QueueSubject is the subject queued events are published to: queue when
// set, which must be a subject without wildcards that the consumer's
// filter matches; else filter itself when it has no wildcards, or filter
// with its final ">" replaced by "http". An error names the config field
// to set.
func QueueSubject(filter, queue string) (string, error) {
	if filter == "" {
		filter = DefaultSubject
	}
	if queue != "" {
		if strings.ContainsAny(queue, "*> \t\r\n") || strings.Contains(queue, "..") || strings.HasPrefix(queue, ".") || strings.HasSuffix(queue, ".") {
			return "", fmt.Errorf("intake.nats.queue_subject %q must be a subject without wildcards, such as %q", queue, "reins.events.http")
		}
		if !SubjectMatches(filter, queue) {
			return "", fmt.Errorf("intake.nats.queue_subject %q is not matched by intake.nats.subject %q: the consumer would never take the queued events; use a subject it matches", queue, filter)
		}
		return queue, nil
	}
	switch {
	case !strings.ContainsAny(filter, "*>"):
		return filter, nil
	case strings.HasSuffix(filter, ".>") && !strings.Contains(filter, "*"):
		return strings.TrimSuffix(filter, ">") + ViaHTTP, nil
	}
	return "", fmt.Errorf("intake.nats.queue_subject: intake.nats.subject %q has wildcards that reins cannot fill in: set a subject it matches", filter)
}

// SubjectMatches reports whether subject (no wildcards) is one that the
// filter (NATS wildcards: "*" one token, a final ">" one or more) matches.
func SubjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return i == len(ft)-1 && len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

// EncodeEvent is the message that carries ev through the queue, which the
// Consumer decodes back into ev: an Alertmanager payload (version 4) with
// ev as its only alert, or ev as a CloudEvent in structured JSON mode whose
// data holds its labels, annotations, status, fingerprint and URL.
func EncodeEvent(ev Event) ([]byte, error) {
	switch ev.Kind {
	case KindAlertmanager:
		alert, err := marshalJSON(alertmanagerAlert{
			Status: string(ev.Status), Labels: ev.Labels, Annotations: ev.Annotations,
			StartsAt: formatTime(ev.StartsAt), EndsAt: formatTime(ev.EndsAt),
			GeneratorURL: ev.URL, Fingerprint: ev.Fingerprint,
		})
		if err != nil {
			return nil, err
		}
		return marshalJSON(alertmanagerPayload{Version: AlertmanagerVersion, Status: string(ev.Status), ExternalURL: ev.Source, Alerts: []json.RawMessage{alert}})
	case KindCloudEvent:
		data, err := marshalJSON(cloudEventData{Labels: ev.Labels, Annotations: ev.Annotations, Status: string(ev.Status), Fingerprint: ev.Fingerprint, URL: ev.URL})
		if err != nil {
			return nil, err
		}
		e := event.New()
		e.SetID(ev.ID)
		e.SetSource(ev.Source)
		e.SetType(ev.Type)
		if ev.Subject != "" {
			e.SetSubject(ev.Subject)
		}
		if !ev.StartsAt.IsZero() {
			e.SetTime(ev.StartsAt)
		}
		if err := e.SetData(event.ApplicationJSON, data); err != nil {
			return nil, fmt.Errorf("intake queue: CloudEvent data: %w", err)
		}
		return json.Marshal(e)
	}
	return nil, fmt.Errorf("%w: event kind %q", ErrUnsupported, ev.Kind)
}

// marshalJSON encodes v without escaping <, > and &, which would grow
// values that hold them.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("intake queue: encode the event: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// formatTime is t as an alert carries it; the zero time is "not set".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
