package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KindHeader is the NATS message header that says what a message holds:
// "cloudevent" (the default: a CloudEvent in structured JSON mode) or
// "alertmanager" (an Alertmanager webhook payload, version 4).
const KindHeader = "Reins-Event-Kind"

// ViaHeader is the NATS message header that says which door an event came
// in through before it was queued: "http" on the messages Queue publishes.
// Any other value, or none, is "nats". It is recorded, never trusted for
// anything else.
const ViaHeader = "Reins-Event-Via"

// Defaults of ConsumerOptions.
const (
	DefaultStream      = "REINS_EVENTS"
	DefaultSubject     = "reins.events.>"
	DefaultDurable     = "reins-intake"
	DefaultAckWait     = 30 * time.Second
	DefaultMaxDeliver  = 1000
	DefaultConcurrency = 16
	// maxNakDelay bounds the wait before a failed message is redelivered.
	maxNakDelay = 30 * time.Second
)

// ConsumerOptions configure the JetStream consumer. The zero value of each
// field but URL is its default.
type ConsumerOptions struct {
	// URL of the NATS server (several comma-separated). Required.
	URL string
	// CredentialsFile is a NATS .creds file. Default: none.
	CredentialsFile string
	// Stream holds the events. Default DefaultStream.
	Stream string
	// Subject is the subject (wildcards allowed) the consumer takes from
	// the stream. Default DefaultSubject.
	Subject string
	// Durable is the durable consumer's name: a restarted gateway resumes
	// where it stopped. Default DefaultDurable.
	Durable string
	// CreateStream creates Stream, taking Subject, when it does not exist
	// (file storage, kept 7 days). Default false: the stream must exist.
	CreateStream bool
	// AckWait is how long the server waits for a message's ack before it
	// sends it again (to this gateway or another). Default 30s. The
	// consumer restarts it before each event of a message (InProgress) and
	// gives each event three quarters of it (Temporal's start or signal,
	// the audit record); an event not handled by then has the message sent
	// again.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one message. Only a message that
	// Temporal or the audit sink kept failing is delivered again (each time
	// after a delay growing to 30s), so the default, 1000, outlasts hours
	// of outage; the last failure is recorded as refused.
	MaxDeliver int
	// Concurrency is how many messages are handled at once. Default 16.
	Concurrency int
	// QueueSubject is the subject Queue publishes the HTTP doors' events
	// to (queued delivery): a subject without wildcards that Subject
	// matches. Default: Subject itself when it has no wildcards, or
	// Subject with its final ">" replaced by "http" ("reins.events.http").
	QueueSubject string
	// Limits bound each message.
	Limits Limits
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns o with every unset field at its default.
func (o ConsumerOptions) WithDefaults() ConsumerOptions {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	o.Limits = o.Limits.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Consumer takes events from a JetStream stream through a durable pull
// consumer and dispatches them. A message is acknowledged only once every
// event in it was handled (Temporal accepted the start or the signal, or
// the event was recorded as unmatched or refused); a message that cannot be
// read is recorded and terminated, so that it is not sent again; one whose
// handling failed is sent again after a delay. A restarted consumer
// resumes with the messages not acknowledged: none is lost, and one
// handled twice joins the remediation it started.
type Consumer struct {
	opts     ConsumerOptions
	dispatch *Dispatcher
	nc       *nats.Conn
	consumer jetstream.Consumer
}

// NewConsumer connects, makes sure the stream (when CreateStream) and the
// durable consumer exist, and returns a Consumer ready to Run.
func NewConsumer(ctx context.Context, opts ConsumerOptions, d *Dispatcher) (*Consumer, error) {
	opts = opts.WithDefaults()
	if opts.URL == "" {
		return nil, errors.New("intake nats: no URL (intake.nats.url)")
	}
	nc, err := dial(opts, "reins-intake")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("intake nats: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := js.Stream(setup, opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && opts.CreateStream {
		stream, err = js.CreateStream(setup, jetstream.StreamConfig{
			Name:        opts.Stream,
			Description: "events for reins' intake (CloudEvents, Alertmanager payloads)",
			Subjects:    []string{opts.Subject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      7 * 24 * time.Hour,
			Duplicates:  2 * time.Minute,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = js.Stream(setup, opts.Stream)
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		nc.Close()
		return nil, fmt.Errorf("intake nats: stream %s does not exist: create it, or set intake.nats.create_stream", opts.Stream)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("intake nats: stream %s: %w", opts.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(setup, jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		Description:   "reins intake: one remediation per incident",
		FilterSubject: opts.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		MaxDeliver:    opts.MaxDeliver,
		MaxAckPending: opts.Concurrency * 4,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("intake nats: durable consumer %s on stream %s (intake.nats.durable): %w", opts.Durable, opts.Stream, err)
	}
	return &Consumer{opts: opts, dispatch: d, nc: nc, consumer: cons}, nil
}

// dial connects to opts.URL as name, reconnecting for ever.
func dial(opts ConsumerOptions, name string) (*nats.Conn, error) {
	log := opts.Logger
	connOpts := []nats.Option{
		nats.Name(name),
		nats.Timeout(10 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("intake nats: disconnected", "connection", name, "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("intake nats: reconnected", "connection", name, "url", c.ConnectedUrlRedacted())
		}),
	}
	if opts.CredentialsFile != "" {
		connOpts = append(connOpts, nats.UserCredentials(opts.CredentialsFile))
	}
	nc, err := nats.Connect(opts.URL, connOpts...)
	if err != nil {
		return nil, fmt.Errorf("intake nats: connect (intake.nats.url): %w", err)
	}
	return nc, nil
}

// Run handles messages until ctx ends, then stops taking new ones, finishes
// (and acknowledges) those in hand, and closes the connection.
func (c *Consumer) Run(ctx context.Context) error {
	it, err := c.consumer.Messages(jetstream.PullMaxMessages(c.opts.Concurrency))
	if err != nil {
		c.nc.Close()
		return fmt.Errorf("intake nats: consume %s: %w", c.opts.Durable, err)
	}
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	var wg sync.WaitGroup
	slots := make(chan struct{}, c.opts.Concurrency)
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			// Missed heartbeats, a lost connection: the iterator keeps pulling.
			c.opts.Logger.Warn("intake nats: pull", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			// Messages in hand are finished even when ctx ended.
			c.handle(context.WithoutCancel(ctx), msg)
		}()
	}
	wg.Wait()
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("intake nats: drain: %w", err)
	}
	return nil
}

// eventTimeout bounds the handling of one event of a message: the
// consumer tells the server it is still working on the message before each
// event (InProgress, which restarts the AckWait), so an event must be done,
// and the next one begun or the message acknowledged, within AckWait.
func (c *Consumer) eventTimeout() time.Duration { return c.opts.AckWait * 3 / 4 }

// handle dispatches one message's events and acknowledges it.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	log := c.opts.Logger.With("subject", msg.Subject())
	delivered := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		delivered = md.NumDelivered
		log = log.With("stream_seq", md.Sequence.Stream, "delivered", delivered)
	}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, c.eventTimeout()) }
	sctx, cancel := step()
	events, kind, err := c.decode(sctx, msg)
	if err != nil {
		_, rerr := c.dispatch.Refuse(sctx, kind, ViaNATS, err)
		cancel()
		if rerr != nil {
			c.fail(msg, delivered, log, rerr)
			return
		}
		log.Warn("intake nats: message refused", "error", err)
		if err := msg.Term(); err != nil {
			log.Warn("intake nats: terminate", "error", err)
		}
		return
	}
	cancel()
	outcomes := make([]Outcome, 0, len(events))
	for i, ev := range events {
		if i > 0 {
			// A message may hold up to Limits.MaxAlerts events: each one
			// restarts the server's AckWait, so that a slow Temporal does
			// not have the message sent again while it is in hand.
			if err := msg.InProgress(); err != nil {
				log.Warn("intake nats: in progress", "error", err)
			}
		}
		sctx, cancel := step()
		o, err := c.dispatch.Dispatch(sctx, ev)
		cancel()
		if err != nil {
			c.fail(msg, delivered, log, err)
			return
		}
		outcomes = append(outcomes, o)
	}
	sctx, cancel = step()
	err = msg.DoubleAck(sctx)
	cancel()
	if err != nil {
		// Not acknowledged: it comes back, and its starts join.
		log.Warn("intake nats: ack", "error", err)
		return
	}
	for _, o := range outcomes {
		sctx, cancel := step()
		c.dispatch.Record(sctx, o)
		cancel()
	}
}

// fail has msg sent again, or terminates it when sending it again cannot
// help: the audit sink refuses the record of one of its events for its size.
func (c *Consumer) fail(msg jetstream.Msg, delivered uint64, log *slog.Logger, cause error) {
	var rerr *RecordError
	if errors.As(cause, &rerr) && rerr.Permanent {
		log.Error("intake nats: terminating the message: the audit sink refuses its record, even without the event's content, for its size; raise the audit sink's max payload (NATS max_payload, the stream's max_msg_size)", "error", cause)
		if err := msg.Term(); err != nil {
			log.Warn("intake nats: terminate", "error", err)
		}
		return
	}
	c.retry(msg, delivered, log, cause)
}

// retry has msg sent again after a delay, or records that it gave up.
func (c *Consumer) retry(msg jetstream.Msg, delivered uint64, log *slog.Logger, cause error) {
	if delivered >= uint64(c.opts.MaxDeliver) {
		log.Error("intake nats: giving up on the message after its last delivery (intake.nats.max_deliver)", "error", cause)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.dispatch.Refuse(ctx, "", ViaNATS, fmt.Errorf("gave up after %d deliveries: %w", delivered, cause)); err != nil {
			log.Error("intake nats: the message given up on is not recorded", "error", err)
		}
		if err := msg.Term(); err != nil {
			log.Warn("intake nats: terminate", "error", err)
		}
		return
	}
	delay := time.Second << min(delivered-1, 5)
	log.Warn("intake nats: not handled; it will be sent again", "in", min(delay, maxNakDelay), "error", cause)
	if err := msg.NakWithDelay(min(delay, maxNakDelay)); err != nil {
		log.Warn("intake nats: nak", "error", err)
	}
}

// decode reads a message's events, by its KindHeader.
func (c *Consumer) decode(ctx context.Context, msg jetstream.Msg) ([]Event, Kind, error) {
	via := ViaNATS
	if strings.TrimSpace(msg.Headers().Get(ViaHeader)) == ViaHTTP {
		via = ViaHTTP
	}
	kind := Kind(strings.TrimSpace(msg.Headers().Get(KindHeader)))
	switch kind {
	case "", KindCloudEvent:
		ev, err := DecodeCloudEventJSON(ctx, msg.Data(), via, c.opts.Limits)
		if err != nil {
			return nil, KindCloudEvent, err
		}
		return []Event{ev}, KindCloudEvent, nil
	case KindAlertmanager:
		if int64(len(msg.Data())) > c.opts.Limits.MaxBodyBytes {
			return nil, kind, &TooLargeError{Limit: c.opts.Limits.MaxBodyBytes}
		}
		evs, err := decodeAlertmanager(msg.Data(), via, c.opts.Limits)
		return evs, kind, err
	}
	return nil, "", fmt.Errorf("%w: header %s is %q; use %q or %q", ErrUnsupported, KindHeader, clip(string(kind)), KindCloudEvent, KindAlertmanager)
}
