package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configures StartNATS. The zero value of every field but Dir is
// a working default.
type NATSOptions struct {
	// Dir holds JetStream's store (Dir/jetstream). Required. Streams left
	// there by an earlier run are reused, so records survive a restart on the
	// same Dir.
	Dir string
	// Port is the client port on 127.0.0.1. Default: a free port.
	Port int
	// MaxStore bounds JetStream's file store in bytes. Default: 1 GiB.
	MaxStore int64
	// Timeout bounds the wait for the server to accept connections.
	// Default: 2 minutes.
	Timeout time.Duration
	// Logger receives progress messages and the server's warnings and
	// errors. Default: slog.Default().
	Logger *slog.Logger
}

// NATS is an embedded nats-server with JetStream on. Unlike the other
// components it runs in this process (nats-server is a Go library), so it
// stops with it.
type NATS struct {
	// URL is the client URL, nats://127.0.0.1:port.
	URL string
	// Dir is where the JetStream store is.
	Dir string

	server    *natsserver.Server
	stopWatch func() bool
	stopOnce  sync.Once
}

// StartNATS starts an embedded NATS server with JetStream on 127.0.0.1 and
// returns once it accepts connections. It runs until Stop is called or ctx
// is cancelled.
func StartNATS(ctx context.Context, opts NATSOptions) (*NATS, error) {
	log := loggerOr(opts.Logger)
	dir, err := componentDir(opts.Dir, "NATSOptions.Dir")
	if err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	started := time.Now()
	s, err := natsserver.NewServer(&natsserver.Options{
		ServerName:         "reins-dev",
		Host:               "127.0.0.1",
		Port:               port,
		JetStream:          true,
		StoreDir:           filepath.Join(dir, "jetstream"),
		JetStreamMaxStore:  orDefault(opts.MaxStore, 1<<30),
		JetStreamMaxMemory: 64 << 20,
		NoSigs:             true,
		MaxPayload:         8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	fatal := make(chan string, 1)
	s.SetLoggerV2(natsLogger{log: log, fatal: fatal}, false, false, false)
	s.Start()
	deadline := time.Now().Add(orDefault(opts.Timeout, defaultTimeout))
	for !s.ReadyForConnections(pollInterval) {
		var failure string
		select {
		case msg := <-fatal:
			failure = msg
		case <-ctx.Done():
			failure = ctx.Err().Error()
		default:
			if time.Now().After(deadline) {
				failure = fmt.Sprintf("not accepting connections within %s", orDefault(opts.Timeout, defaultTimeout))
			}
		}
		if failure != "" {
			s.Shutdown()
			s.WaitForShutdown()
			return nil, fmt.Errorf("start nats on 127.0.0.1:%d: %s", opts.Port, failure)
		}
	}
	n := &NATS{URL: s.ClientURL(), Dir: dir, server: s}
	n.stopWatch = context.AfterFunc(ctx, n.shutdown)
	log.Info("devstack: nats ready", "url", n.URL, "jetstream", filepath.Join(dir, "jetstream"), "took", time.Since(started).Round(time.Millisecond))
	return n, nil
}

// Stop shuts the server down and waits for it. The JetStream store stays in
// Dir. Calling Stop again is a no-op.
func (n *NATS) Stop() {
	n.stopWatch()
	n.shutdown()
}

func (n *NATS) shutdown() {
	n.stopOnce.Do(func() {
		n.server.Shutdown()
		n.server.WaitForShutdown()
	})
}

// natsLogger sends the server's warnings and errors to slog; its notices
// (a screenful at start) are debug messages. A fatal error (such as a port
// in use) is also sent to fatal, so that StartNATS fails at once.
type natsLogger struct {
	log   *slog.Logger
	fatal chan<- string
}

func (l natsLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Warnf(format string, v ...any) { l.log.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error("nats: fatal: " + msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l natsLogger) Errorf(format string, v ...any) {
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Debugf(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Tracef(string, ...any) {}
