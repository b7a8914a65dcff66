package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/workers"
)

// benchIntakeTrigger takes the bench's alerts and starts a dry-run scale.
const benchIntakeTrigger = `{"environment":"staging","explanation":"{{ .annotations.summary }}","dry_run":true,
 "steps":[{"action":"kubernetes.scale","target":{"namespace":"{{ .labels.namespace }}","kind":"Deployment","name":"{{ .labels.deployment }}"},
  "params":{"replicas":3},"justification":"alert {{ .event.fingerprint }}"}]}`

// benchIntakeWait bounds the wait for the consumer to handle the queued burst.
const benchIntakeWait = 5 * time.Minute

// benchIntake is one `reins bench intake` run: its shared parts.
type benchIntake struct {
	cfg                      workers.Config
	c                        sdkclient.Client
	dir                      string
	rec                      *gateway.Recorder
	triggers                 *intake.Triggers
	logger                   *slog.Logger
	n, fingerprints, senders int
	nats                     *devstack.NATS
}

// benchIntakeResult is what one delivery's burst measured.
type benchIntakeResult struct {
	delivery string
	queue    string
	lat      latencies
	took     time.Duration
	// answers counts the door's answers by result.
	answers map[intake.Result]int
	// recorded counts the intake's audit records by result.
	recorded map[intake.Result]int
	// handled is when the last event was handled (queued: by the consumer).
	handled time.Duration
}

func newBenchIntakeCmd(g *globals) *cobra.Command {
	var n, fingerprints, concurrency int
	var delivery string
	cmd := &cobra.Command{
		Use:   "intake [-n N] [--fingerprints F] [--concurrency C] [--delivery direct|queue|both]",
		Short: "Ack latency of the gateway's Alertmanager door under a burst of duplicate alerts (p50, p99)",
		Long: `Starts the gateway's intake in this process against Temporal (TEMPORAL_ADDRESS
and the config's codec), on a task queue of its own that no worker polls,
and posts N Alertmanager alerts over F fingerprints (so N-F are duplicates)
from C senders at once. Prints the ack latency (the time until the 202)
and what the posts did. The remediations it started are terminated at the
end. Goal: p99 at most 20 ms.

--delivery direct (the default) is intake.http_delivery "direct": the door
answers once Temporal accepted the start. --delivery queue is "queue": the
door answers once JetStream stored the event, on an embedded NATS server
(JetStream on, in a temporary folder) whose consumer starts the
remediations; the bench then waits until the consumer handled every event
and prints how many remediations it started (F, exactly). --delivery both
runs one, then the other, and prints them side by side.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || fingerprints < 1 || fingerprints > n || concurrency < 1 {
				return errors.New("need -n ≥ 1, 1 ≤ --fingerprints ≤ n and --concurrency ≥ 1")
			}
			var modes []string
			switch delivery {
			case workers.DeliveryDirect, workers.DeliveryQueue:
				modes = []string{delivery}
			case "both":
				modes = []string{workers.DeliveryDirect, workers.DeliveryQueue}
			default:
				return fmt.Errorf("--delivery is %q; use %s, %s or both", delivery, workers.DeliveryDirect, workers.DeliveryQueue)
			}
			ctx := cmd.Context()
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			logger := g.logger()
			c, err := workers.DialTemporal(ctx, logger, cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			dir, err := os.MkdirTemp("", "reins-bench-intake-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			sink, err := audit.OpenFile(filepath.Join(dir, "audit.jsonl"), logger)
			if err != nil {
				return err
			}
			defer sink.Close()
			rec, err := gateway.NewRecorder([]gateway.AuditSink{sink}, workers.TemporalNamespace(), logger)
			if err != nil {
				return err
			}
			triggers, err := intake.Compile([]intake.TriggerConfig{{Name: "bench", Playbook: json.RawMessage(benchIntakeTrigger)}})
			if err != nil {
				return err
			}
			b := &benchIntake{cfg: cfg, c: c, dir: dir, rec: rec, triggers: triggers, logger: logger, n: n, fingerprints: fingerprints, senders: concurrency}
			defer b.stopNATS()
			out := cmd.OutOrStdout()
			var results []benchIntakeResult
			for _, mode := range modes {
				res, err := b.run(ctx, mode)
				if res.answers != nil {
					res.print(out, b)
				}
				if err != nil {
					return fmt.Errorf("%s delivery: %w", mode, err)
				}
				results = append(results, res)
			}
			if len(results) > 1 {
				fmt.Fprintf(out, "\nack latency, %d posts over %d fingerprints from %d senders:\n", n, fingerprints, concurrency)
				for _, r := range results {
					fmt.Fprintf(out, "  %-7s p50 %-10s p99 %-10s all started %s after the first post\n", r.delivery, roundMS(r.lat.at(50)), roundMS(r.lat.at(99)), roundMS(r.handled))
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 1000, "posts")
	cmd.Flags().IntVar(&fingerprints, "fingerprints", 100, "distinct alerts among the posts")
	cmd.Flags().IntVar(&concurrency, "concurrency", 32, "senders posting at once")
	cmd.Flags().StringVar(&delivery, "delivery", workers.DeliveryDirect, "intake.http_delivery to bench: direct, queue (an embedded NATS) or both")
	return cmd
}

func roundMS(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

// run benches one delivery on a task queue of its own.
func (b *benchIntake) run(ctx context.Context, delivery string) (res benchIntakeResult, err error) {
	res = benchIntakeResult{delivery: delivery, queue: "reins-bench-intake-" + strings.ToLower(rand.Text()[:8])}
	cfg := b.cfg
	cfg.TaskQueue = res.queue
	rec := &benchRecorder{Recorder: b.rec, counts: map[intake.Result]int{}}
	d, err := intake.NewDispatcher(b.triggers, intakeTemporal(b.c, cfg), rec, b.logger)
	if err != nil {
		return res, err
	}
	var queue *intake.Queue
	if delivery == workers.DeliveryQueue {
		var stopConsumer func()
		queue, stopConsumer, err = b.startQueue(ctx, d)
		if err != nil {
			return res, err
		}
		defer stopConsumer()
		defer queue.Close()
	}
	token := rand.Text()
	url, stop, err := benchGateway(ctx, b.dir, d, queue, token)
	if err != nil {
		return res, err
	}
	defer stop()

	prefix := rand.Text()[:10]
	start := time.Now()
	lat, answers, burstErr := intakeBurst(url, token, prefix, b.n, b.fingerprints, b.senders)
	res.took = time.Since(start)
	res.handled = res.took
	res.lat = lat
	if burstErr == nil && queue != nil {
		// Every event is recorded once handled: started or joined by the
		// consumer, or stored once by JetStream and recorded as a duplicate
		// by the door.
		burstErr = waitCount(ctx, benchIntakeWait, func() (bool, error) {
			handled := rec.count(intake.ResultStarted) + rec.count(intake.ResultDuplicate)
			return handled >= b.n, fmt.Errorf("the consumer handled %d of %d events within %s", handled, b.n, benchIntakeWait)
		})
		res.handled = time.Since(start)
	}
	// Clean up before reporting an error: these remediations would wait forever.
	cleanup := context.WithoutCancel(ctx)
	for _, id := range startedRemediations(answers) {
		if err := b.c.TerminateWorkflow(cleanup, id, "", "reins bench intake: done"); err != nil {
			var notFound *serviceerror.NotFound
			if !errors.As(err, &notFound) {
				b.logger.Warn("terminate a bench remediation", "remediation", id, "error", err)
			}
		}
	}
	if burstErr != nil {
		return res, burstErr
	}
	res.answers = map[intake.Result]int{}
	for _, a := range answers {
		res.answers[a.Result]++
	}
	res.recorded = rec.snapshot()
	if got := res.recorded[intake.ResultStarted]; queue != nil && got != b.fingerprints {
		return res, fmt.Errorf("the consumer started %d remediations, want exactly %d (one per fingerprint)", got, b.fingerprints)
	}
	return res, nil
}

// startQueue starts the embedded NATS (once), a consumer on a stream of
// its own that dispatches with d, and the queue to it.
func (b *benchIntake) startQueue(ctx context.Context, d *intake.Dispatcher) (*intake.Queue, func(), error) {
	if b.nats == nil {
		ns, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: filepath.Join(b.dir, "nats"), Logger: b.logger})
		if err != nil {
			return nil, nil, err
		}
		b.nats = ns
	}
	id := strings.ToLower(rand.Text()[:8])
	opts := intake.ConsumerOptions{URL: b.nats.URL, Stream: "REINS_BENCH_" + strings.ToUpper(id), Subject: "reins.bench." + id + ".>",
		Durable: "bench", CreateStream: true, Logger: b.logger}
	cons, err := intake.NewConsumer(ctx, opts, d)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := cons.Run(runCtx); err != nil {
			b.logger.Error("bench intake: consumer", "error", err)
		}
	})
	stop := func() { cancel(); wg.Wait() }
	q, err := intake.NewQueue(ctx, opts)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return q, stop, nil
}

func (b *benchIntake) stopNATS() {
	if b.nats != nil {
		b.nats.Stop()
	}
}

func (r benchIntakeResult) print(out io.Writer, b *benchIntake) {
	fmt.Fprintf(out, "intake ack, delivery %s: %d Alertmanager posts over %d fingerprints from %d senders (task queue %s), %s in all:\n",
		r.delivery, b.n, b.fingerprints, b.senders, r.queue, r.took.Round(time.Millisecond))
	fmt.Fprintf(out, "  ack      %s\n", r.lat)
	if r.delivery == workers.DeliveryQueue {
		fmt.Fprintf(out, "  answers  queued %d, duplicate %d (stored once by JetStream)\n", r.answers[intake.ResultQueued], r.answers[intake.ResultDuplicate])
		fmt.Fprintf(out, "  consumer started %d remediations (want %d), joined %d; all handled %s after the first post\n",
			r.recorded[intake.ResultStarted], b.fingerprints, r.recorded[intake.ResultDuplicate]-r.answers[intake.ResultDuplicate], r.handled.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(out, "  started  %d, joined %d\n", r.answers[intake.ResultStarted], r.answers[intake.ResultDuplicate])
}

// benchRecorder counts the intake's audit records by result.
type benchRecorder struct {
	intake.Recorder
	mu     sync.Mutex
	counts map[intake.Result]int
}

// RecordIntake records o and counts it.
func (r *benchRecorder) RecordIntake(ctx context.Context, o intake.Outcome) error {
	if err := r.Recorder.RecordIntake(ctx, o); err != nil {
		return err
	}
	r.mu.Lock()
	r.counts[o.Result]++
	r.mu.Unlock()
	return nil
}

func (r *benchRecorder) count(res intake.Result) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[res]
}

func (r *benchRecorder) snapshot() map[intake.Result]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[intake.Result]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// waitCount polls done every 20ms until it holds, ctx ends or limit passes
// (then its error says how far it got).
func waitCount(ctx context.Context, limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, progress := done()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return progress
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// startedRemediations are the remediations the answers started or will
// start: those answered started, or queued (the consumer starts them).
func startedRemediations(answers []gateway.IntakeEventResult) []string {
	seen := map[string]bool{}
	var ids []string
	for _, a := range answers {
		switch a.Result {
		case intake.ResultStarted, intake.ResultQueued:
			if !seen[a.Remediation] {
				seen[a.Remediation] = true
				ids = append(ids, a.Remediation)
			}
		}
	}
	return ids
}

// benchGateway serves a gateway with the intake (queued delivery when queue
// is set) on a loopback port.
func benchGateway(ctx context.Context, dir string, d *intake.Dispatcher, queue *intake.Queue, token string) (string, func(), error) {
	keyFile := filepath.Join(dir, "codec.key")
	if err := codec.GenerateKeyFile(keyFile); err != nil && !errors.Is(err, os.ErrExist) {
		return "", nil, err
	}
	keys, err := codec.LoadFileKeys(keyFile)
	if err != nil {
		return "", nil, err
	}
	srv, err := gateway.New(gateway.Options{Codec: &codec.Codec{Keys: keys}, Token: rand.Text()})
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256([]byte(token))
	in, err := gateway.NewIntake(gateway.IntakeOptions{Dispatcher: d, TokenSHA256: [][]byte{sum[:]}, Queue: queue})
	if err != nil {
		return "", nil, err
	}
	in.Mount(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		in.Close()
		return "", nil, err
	}
	serveCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(serveCtx, ln) })
	return "http://" + ln.Addr().String(), func() { cancel(); wg.Wait(); in.Close() }, nil
}

// intakeBurst posts n alerts over the fingerprints from concurrency senders
// and returns each post's latency and the door's answer to each (those
// answered so far when it fails).
func intakeBurst(url, token, prefix string, n, fingerprints, concurrency int) (latencies, []gateway.IntakeEventResult, error) {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	lat := make(latencies, n)
	answers := make([]gateway.IntakeEventResult, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for failed.Load() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := fmt.Appendf(nil, `{"version":"4","status":"firing","externalURL":"http://bench","alerts":[{"status":"firing",
 "fingerprint":"%s-%d","labels":{"alertname":"Bench","namespace":"bench","deployment":"bench"},"annotations":{"summary":"reins bench intake"}}]}`,
					prefix, i%fingerprints)
				req, _ := http.NewRequest(http.MethodPost, url+gateway.PathAlertmanager, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				answer, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(start)
				var got gateway.IntakeResponse
				switch {
				case err != nil:
				case resp.StatusCode != http.StatusAccepted:
					err = fmt.Errorf("post %d: %s: %s", i, resp.Status, answer)
				default:
					err = json.Unmarshal(answer, &got)
				}
				if err == nil && len(got.Events) != 1 {
					err = fmt.Errorf("post %d: %d results, want 1", i, len(got.Events))
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				answers[i] = got.Events[0]
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return nil, answers, err
	}
	return lat, answers, nil
}
