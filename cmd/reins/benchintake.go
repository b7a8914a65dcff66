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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/workers"
)

// benchIntakeTrigger takes the bench's alerts and starts a dry-run scale.
const benchIntakeTrigger = `{"environment":"staging","explanation":"{{ .annotations.summary }}","dry_run":true,
 "steps":[{"action":"kubernetes.scale","target":{"namespace":"{{ .labels.namespace }}","kind":"Deployment","name":"{{ .labels.deployment }}"},
  "params":{"replicas":3},"justification":"alert {{ .event.fingerprint }}"}]}`

func newBenchIntakeCmd(g *globals) *cobra.Command {
	var n, fingerprints, concurrency int
	cmd := &cobra.Command{
		Use:   "intake [-n N] [--fingerprints F] [--concurrency C]",
		Short: "Ack latency of the gateway's Alertmanager door under a burst of duplicate alerts (p50, p99)",
		Long: `Starts the gateway's intake in this process against Temporal (TEMPORAL_ADDRESS
and the config's codec), on a task queue of its own that no worker polls,
and posts N Alertmanager alerts over F fingerprints (so N-F are duplicates)
from C senders at once. Prints the ack latency, the time until the 202 that
the gateway sends once Temporal accepted the start, and how many posts
started or joined a remediation. The remediations it started are
terminated at the end. Goal: p99 at most 20 ms.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || fingerprints < 1 || fingerprints > n || concurrency < 1 {
				return errors.New("need -n ≥ 1, 1 ≤ --fingerprints ≤ n and --concurrency ≥ 1")
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
			queue := "reins-bench-intake-" + rand.Text()[:8]
			cfg.TaskQueue = queue
			d, err := intake.NewDispatcher(triggers, intakeTemporal(c, cfg), rec, logger)
			if err != nil {
				return err
			}
			token := rand.Text()
			url, stop, err := benchGateway(ctx, dir, d, token)
			if err != nil {
				return err
			}
			defer stop()

			prefix := rand.Text()[:10]
			start := time.Now()
			lat, started, joined, err := intakeBurst(url, token, prefix, n, fingerprints, concurrency)
			took := time.Since(start)
			// Clean up before reporting an error: these remediations would wait forever.
			cleanup := context.WithoutCancel(ctx)
			for _, id := range started {
				if err := c.TerminateWorkflow(cleanup, id, "", "reins bench intake: done"); err != nil {
					logger.Warn("terminate a bench remediation", "remediation", id, "error", err)
				}
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "intake ack, %d Alertmanager posts over %d fingerprints from %d senders (task queue %s), %s in all:\n", n, fingerprints, concurrency, queue, took.Round(time.Millisecond))
			fmt.Fprintf(out, "  ack      %s\n", lat)
			fmt.Fprintf(out, "  started  %d, joined %d\n", len(started), joined)
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 1000, "posts")
	cmd.Flags().IntVar(&fingerprints, "fingerprints", 100, "distinct alerts among the posts")
	cmd.Flags().IntVar(&concurrency, "concurrency", 32, "senders posting at once")
	return cmd
}

// benchGateway serves a gateway with the intake on a loopback port.
func benchGateway(ctx context.Context, dir string, d *intake.Dispatcher, token string) (string, func(), error) {
	keyFile := filepath.Join(dir, "codec.key")
	if err := codec.GenerateKeyFile(keyFile); err != nil {
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
	in, err := gateway.NewIntake(gateway.IntakeOptions{Dispatcher: d, TokenSHA256: [][]byte{sum[:]}})
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
// and returns each post's latency, the remediations started and the count
// of joins.
func intakeBurst(url, token, prefix string, n, fingerprints, concurrency int) (latencies, []string, int, error) {
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
	var started []string
	joined := 0
	for _, a := range answers {
		switch a.Result {
		case intake.ResultStarted:
			started = append(started, a.Remediation)
		case intake.ResultDuplicate:
			joined++
		}
	}
	if err, _ := failed.Load().(error); err != nil {
		return nil, started, joined, err
	}
	return lat, started, joined, nil
}
