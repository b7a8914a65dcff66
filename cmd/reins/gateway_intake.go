package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/workers"
)

// mountIntake mounts the event intake on srv when the config has triggers:
// the HTTP doors (POST /v1/events/alertmanager, /v1/events/cloudevents)
// when an intake token is configured, and the NATS JetStream consumer,
// which runs until ctx ends, when intake.nats.url is set. Events start
// remediations on Temporal and are recorded in the gateway's audit chain;
// with intake.http_delivery "queue" the HTTP doors put them on the
// consumer's stream instead. stop, called once srv no longer serves, writes
// the records still pending, waits for the queue's PubAcks in flight and
// stops the consumer (finishing the messages in hand).
func mountIntake(ctx context.Context, srv *gateway.Server, cfg workers.Config, c sdkclient.Client, rec *gateway.Recorder, logger *slog.Logger) (stop func(), err error) {
	ic := cfg.Intake
	if !ic.Enabled() {
		return func() {}, nil
	}
	triggers, err := ic.CompileTriggers()
	if err != nil {
		return nil, err
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (func(), error) {
		closeAll()
		return nil, err
	}
	d, err := intake.NewDispatcher(triggers, intakeTemporal(c, cfg), rec, logger)
	if err != nil {
		return fail(err)
	}
	// The consumer first: it creates the stream the queued HTTP doors publish to.
	if ic.NATSEnabled() {
		cons, err := intake.NewConsumer(ctx, ic.ConsumerOptions(logger), d)
		if err != nil {
			return fail(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := cons.Run(runCtx); err != nil {
				logger.Error("intake: NATS consumer stopped", "error", err)
			}
		})
		closers = append(closers, func() { cancel(); wg.Wait() })
		opts := ic.ConsumerOptions(logger).WithDefaults()
		logger.Info("intake: NATS consumer running", "stream", opts.Stream, "subject", opts.Subject, "durable", opts.Durable, "triggers", triggers.Len())
	}
	if ic.HTTPEnabled() {
		hashes, err := ic.TokenHashes()
		if err != nil {
			return fail(err)
		}
		var queue *intake.Queue
		delivery := workers.DeliveryDirect
		if ic.Queued() {
			if queue, err = intake.NewQueue(ctx, ic.ConsumerOptions(logger)); err != nil {
				return fail(err)
			}
			closers = append(closers, queue.Close)
			delivery = workers.DeliveryQueue + " on " + queue.Subject()
		}
		in, err := gateway.NewIntake(gateway.IntakeOptions{Dispatcher: d, TokenSHA256: hashes, Queue: queue, Limits: ic.Limits, Logger: logger})
		if err != nil {
			return fail(err)
		}
		in.Mount(srv)
		closers = append(closers, in.Close)
		logger.Info("intake: HTTP doors mounted", "alertmanager", gateway.PathAlertmanager, "cloudevents", gateway.PathCloudEvents, "delivery", delivery, "triggers", triggers.Len())
	}
	var once sync.Once
	return func() { once.Do(closeAll) }, nil
}

// intakeTemporal is how the intake starts remediations: on the workers'
// task queue, with the config's remediation options.
func intakeTemporal(c sdkclient.Client, cfg workers.Config) intake.TemporalClient {
	return intake.TemporalClient{Client: c, TaskQueue: cfg.TaskQueue, Options: remediationOptions(cfg)}
}

// openGatewayRecorder opens the configured audit sinks and the gateway's
// audit chain on them, shared by every door.
func openGatewayRecorder(ctx context.Context, cfg workers.Config, logger *slog.Logger) (*gateway.Recorder, func(), error) {
	sinks, err := workers.OpenAuditSinks(ctx, cfg.Audit, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway audit: %w", err)
	}
	closeSinks := func() {
		if err := sinks.Close(); err != nil {
			logger.Warn("close audit sinks", "error", err)
		}
	}
	gs := make([]gateway.AuditSink, 0, len(sinks.Sinks))
	for _, s := range sinks.Sinks {
		gs = append(gs, s)
	}
	rec, err := gateway.NewRecorder(gs, workers.TemporalNamespace(), logger)
	if err != nil {
		closeSinks()
		return nil, nil, err
	}
	return rec, closeSinks, nil
}
