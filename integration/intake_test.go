//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"google.golang.org/grpc"
	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

const intakeToken = "integration-intake-token-0123456789"

// intakeTriggers maps the test alerts and CloudEvents to a dry-run scale:
// nothing needs an approval, and no worker runs them (a started
// remediation stays running, which is what the counts need).
const intakeTriggers = `
- name: it-replicas
  match:
    kind: alertmanager
    type: KubeDeploymentReplicasMismatch
    labels: ['severity=critical', 'namespace=~"it-.*"']
  playbook:
    environment: staging
    explanation: '{{ .annotations.summary }}'
    dry_run: true
    steps:
      - action: kubernetes.scale
        target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: '{{ .labels.deployment }}'}
        params: {replicas: 3}
        justification: 'alert {{ .event.fingerprint }}'
- name: it-cart
  match:
    kind: cloudevent
    type: com.example.cart.down
  playbook:
    environment: staging
    explanation: 'cart is down ({{ .event.id }})'
    dry_run: true
    steps:
      - action: kubernetes.rollout-restart
        target: {namespace: '{{ .labels.namespace }}', kind: Deployment, name: cart}
        justification: 'event {{ .event.id }} from {{ .event.source }}'
`

func intakeTriggerConfigs(t testing.TB) []intake.TriggerConfig {
	t.Helper()
	var cfgs []intake.TriggerConfig
	if err := yaml.UnmarshalStrict([]byte(intakeTriggers), &cfgs); err != nil {
		t.Fatal(err)
	}
	return cfgs
}

// intakeSink reads the intake's records.
type intakeSink struct{ gatewayAudit }

func (s *intakeSink) count() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.recs {
		out[r.Type]++
	}
	return out
}

// intakeDoor is an in-process gateway with the intake, starting
// remediations on its own task queue.
type intakeDoor struct {
	url        string
	queue      string
	sink       *intakeSink
	intake     *gateway.Intake
	dispatcher *intake.Dispatcher
	// stream holds the queued events (startQueuedIntakeDoor).
	stream jetstream.Stream
}

// intakeClient is a Temporal client dialled as workers.DialTemporal does:
// with workflows.StartedInterceptor, so that duplicates are told exactly.
func intakeClient(t testing.TB) sdkclient.Client {
	t.Helper()
	c, err := sdkclient.Dial(sdkclient.Options{
		HostPort: stack.temporal.Address, Namespace: stack.temporal.Namespace, Logger: log.NewStructuredLogger(stack.logger),
		ConnectionOptions: sdkclient.ConnectionOptions{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(workflows.StartedInterceptor)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func startIntakeDoor(t testing.TB) *intakeDoor {
	t.Helper()
	return newIntakeDoor(t, false)
}

// startQueuedIntakeDoor is an intake door with queued delivery: its HTTP
// doors put events on a JetStream stream of its own on the harness's NATS,
// whose consumer starts the remediations.
func startQueuedIntakeDoor(t testing.TB) *intakeDoor {
	t.Helper()
	return newIntakeDoor(t, true)
}

func newIntakeDoor(t testing.TB, queued bool) *intakeDoor {
	t.Helper()
	triggers, err := intake.Compile(intakeTriggerConfigs(t))
	if err != nil {
		t.Fatal(err)
	}
	sink := &intakeSink{}
	rec, err := gateway.NewRecorder([]gateway.AuditSink{sink}, stack.temporal.Namespace, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	queue := unique("reins-intake")
	d, err := intake.NewDispatcher(triggers, intake.TemporalClient{Client: intakeClient(t), TaskQueue: queue}, rec, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	gw := newTestGateway(t)
	door := &intakeDoor{queue: queue, sink: sink, dispatcher: d}
	var q *intake.Queue
	if queued {
		q, door.stream = startIntakeQueue(t, d)
	}
	sum := sha256.Sum256([]byte(intakeToken))
	in, err := gateway.NewIntake(gateway.IntakeOptions{Dispatcher: d, TokenSHA256: [][]byte{sum[:]}, Queue: q, Logger: stack.logger})
	if err != nil {
		t.Fatal(err)
	}
	in.Mount(gw)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); in.Close() })
	door.url, door.intake = srv.URL, in
	return door
}

// startIntakeQueue runs a consumer that dispatches with d from a stream of
// its own, and returns the queue to it and the stream. Both stop when the
// test ends, after the door.
func startIntakeQueue(t testing.TB, d *intake.Dispatcher) (*intake.Queue, jetstream.Stream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	name := unique("it-queue")
	opts := intake.ConsumerOptions{URL: stack.nats.URL, Stream: strings.ToUpper(strings.ReplaceAll(name, "-", "_")), Subject: name + ".>",
		Durable: "it", CreateStream: true, Logger: stack.logger}
	cons, err := intake.NewConsumer(ctx, opts, d)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("intake consumer: %v", err)
		}
	})
	q, err := intake.NewQueue(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	nc, err := nats.Connect(stack.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return q, stream
}

// storedEvents is how many messages the door's stream holds.
func (door *intakeDoor) storedEvents(t testing.TB) uint64 {
	t.Helper()
	info, err := door.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// alertPost is an Alertmanager post of one firing (or resolved) alert.
func alertPost(fingerprint, status string) []byte {
	return fmt.Appendf(nil, `{"version":"4","status":%[2]q,"receiver":"reins","externalURL":"http://alertmanager:9093",
 "groupKey":"{}:{alertname=\"KubeDeploymentReplicasMismatch\"}","truncatedAlerts":0,
 "groupLabels":{},"commonLabels":{},"commonAnnotations":{},
 "alerts":[{"status":%[2]q,"fingerprint":%[1]q,"startsAt":"2026-03-01T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
  "generatorURL":"http://prometheus:9090/graph",
  "labels":{"alertname":"KubeDeploymentReplicasMismatch","severity":"critical","namespace":"it-shop","deployment":"checkout"},
  "annotations":{"summary":"checkout has 1/3 replicas"}}]}`, fingerprint, status)
}

// intakePost posts body and returns the status and the answer.
func intakePost(client *http.Client, url string, body []byte, header map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+intakeToken)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// intakeCount counts the workflows of a visibility query.
func intakeCount(t testing.TB, query string) int {
	t.Helper()
	resp, err := stack.client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: stack.temporal.Namespace, Query: query})
	if err != nil {
		t.Fatal(err)
	}
	return int(resp.GetCount())
}

// wantRemediations waits until visibility counts want remediations on
// queue (it is eventually consistent), checks that they are want distinct
// running workflow IDs, and that the count stays there.
func wantRemediations(t testing.TB, queue string, want int) []string {
	t.Helper()
	query := fmt.Sprintf("TaskQueue = '%s'", queue)
	waitFor(t, fmt.Sprintf("%d remediations on %s", want, queue), func() (bool, error) {
		n := intakeCount(t, query)
		if n > want {
			t.Fatalf("%d remediations on %s, want %d", n, queue, want)
		}
		return n == want, fmt.Errorf("%d so far", n)
	})
	var ids []string
	var token []byte
	for {
		resp, err := stack.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: stack.temporal.Namespace, Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				t.Errorf("remediation %s is %s, want running", e.GetExecution().GetWorkflowId(), e.GetStatus())
			}
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.Sort(ids)
	if got := len(slices.Compact(slices.Clone(ids))); got != want || len(ids) != want {
		t.Errorf("%d executions with %d distinct IDs, want %d of each", len(ids), got, want)
	}
	// Nothing more shows up later (a late duplicate start would).
	time.Sleep(2 * time.Second)
	if n := intakeCount(t, query); n != want {
		t.Errorf("%d remediations on %s after a while, want %d", n, queue, want)
	}
	return ids
}

// burst posts n Alertmanager alerts over `fingerprints` fingerprints from
// `concurrency` clients at once, and returns each post's ack latency and
// the results the gateway answered.
func burst(t testing.TB, url, prefix string, n, fingerprints, concurrency int) ([]time.Duration, map[intake.Result]int) {
	t.Helper()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, n)
	results := make([]intake.Result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := alertPost(fmt.Sprintf("%s-%d", prefix, i%fingerprints), "firing")
				start := time.Now()
				code, answer, err := intakePost(client, url+gateway.PathAlertmanager, body, nil)
				lat[i] = time.Since(start)
				if err == nil && code != http.StatusAccepted {
					err = fmt.Errorf("post %d: %d %s", i, code, answer)
				}
				var got gateway.IntakeResponse
				if err == nil {
					err = json.Unmarshal(answer, &got)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				results[i] = got.Events[0].Result
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	count := map[intake.Result]int{}
	for _, r := range results {
		count[r]++
	}
	return lat, count
}

// wantOnePerFingerprint checks what the burst of 1,000 posts over 100
// fingerprints under prefix left: exactly one remediation per fingerprint
// (Temporal's visibility count), named after it, and every post recorded
// once, as a start or a duplicate. It closes the door.
func wantOnePerFingerprint(t *testing.T, door *intakeDoor, prefix string) {
	t.Helper()
	ids := wantRemediations(t, door.queue, 100)
	for i, id := range ids {
		if !strings.HasPrefix(id, "reins-it-replicas-"+prefix+"-") {
			t.Errorf("remediation %d is %s, want reins-it-replicas-<fingerprint>", i, id)
		}
	}
	waitFor(t, "every post recorded", func() (bool, error) {
		recs := door.sink.count()
		return recs[gateway.AuditEventStarted]+recs[gateway.AuditEventDuplicate] >= 1000, fmt.Errorf("records %v", recs)
	})
	door.intake.Close()
	recs := door.sink.count()
	if recs[gateway.AuditEventStarted] != 100 || recs[gateway.AuditEventDuplicate] != 900 {
		t.Errorf("audit records %v, want 100 %s and 900 %s", recs, gateway.AuditEventStarted, gateway.AuditEventDuplicate)
	}
}

func percentile(lat []time.Duration, p int) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[max(0, (len(s)*p+99)/100-1)]
}

// 1,000 Alertmanager posts, 90 % of them duplicates of 100 fingerprints,
// sent concurrently: exactly one remediation per fingerprint, counted
// through Temporal's visibility API; the gateway tells (and records)
// exactly which posts started one and which joined.
func TestIntakeAlertmanagerBurst(t *testing.T) {
	door := startIntakeDoor(t)
	prefix := unique("burst")
	lat, results := burst(t, door.url, prefix, 1000, 100, 32)
	if results[intake.ResultStarted] != 100 || results[intake.ResultDuplicate] != 900 {
		t.Errorf("answers %v, want 100 started and 900 duplicate", results)
	}
	wantOnePerFingerprint(t, door, prefix)
	t.Logf("ack latency under the burst: p50 %s, p99 %s, max %s", percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
}

// The same burst through queued delivery (intake.http_delivery: queue):
// every post is answered once JetStream stored it, identical posts are
// stored once, and the consumer starts exactly one remediation per
// fingerprint (visibility count); every post is recorded once, as a start
// or a duplicate.
func TestIntakeQueuedBurst(t *testing.T) {
	door := startQueuedIntakeDoor(t)
	prefix := unique("qburst")
	lat, results := burst(t, door.url, prefix, 1000, 100, 32)
	if results[intake.ResultQueued] < 100 || results[intake.ResultQueued]+results[intake.ResultDuplicate] != 1000 {
		t.Errorf("answers %v, want 1000 queued or duplicate, at least 100 queued", results)
	}
	if n := door.storedEvents(t); n != uint64(results[intake.ResultQueued]) {
		t.Errorf("%d events stored, want one per queued answer (%d)", n, results[intake.ResultQueued])
	}
	wantOnePerFingerprint(t, door, prefix)
	t.Logf("queued ack latency under the burst: p50 %s, p99 %s, max %s", percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
}

// In queued delivery a bad payload is refused with its problem and nothing
// is queued, an unmatched event is answered and recorded and not queued,
// and a good one is answered "queued" with its remediation, which starts.
func TestIntakeQueuedRefuses(t *testing.T) {
	door := startQueuedIntakeDoor(t)
	client := &http.Client{Timeout: time.Minute}
	fp := unique("queued")
	bad := bytes.Replace(alertPost(fp, "firing"), []byte(`"fingerprint":"`), []byte(`"fingerprint":"not a fingerprint `), 1)
	code, answer, err := intakePost(client, door.url+gateway.PathAlertmanager, bad, nil)
	if err != nil || code != http.StatusBadRequest || !strings.Contains(string(answer), `"alerts[0].fingerprint"`) {
		t.Errorf("bad payload: %d %s %v, want 400 naming alerts[0].fingerprint", code, answer, err)
	}
	unmatched := bytes.Replace(alertPost(fp+"-other", "firing"), []byte(`"namespace":"it-shop"`), []byte(`"namespace":"elsewhere"`), 1)
	code, answer, err = intakePost(client, door.url+gateway.PathAlertmanager, unmatched, nil)
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"unmatched"`) {
		t.Errorf("unmatched: %d %s %v", code, answer, err)
	}
	if n := door.storedEvents(t); n != 0 {
		t.Fatalf("%d events queued by a bad payload and an unmatched event, want none", n)
	}
	code, answer, err = intakePost(client, door.url+gateway.PathAlertmanager, alertPost(fp, "firing"), nil)
	var got gateway.IntakeResponse
	if err == nil {
		err = json.Unmarshal(answer, &got)
	}
	if err != nil || code != http.StatusAccepted || len(got.Events) != 1 || got.Events[0].Result != intake.ResultQueued || got.Events[0].Remediation != incidentID("it-replicas", fp) {
		t.Fatalf("good payload: %d %s %v, want queued for %s", code, answer, err, incidentID("it-replicas", fp))
	}
	if n := door.storedEvents(t); n != 1 {
		t.Errorf("%d events queued, want 1", n)
	}
	ids := wantRemediations(t, door.queue, 1)
	if ids[0] != incidentID("it-replicas", fp) {
		t.Errorf("remediation %s, want %s", ids[0], incidentID("it-replicas", fp))
	}
	recs := door.sink.count()
	if recs[gateway.AuditEventRefused] != 1 || recs[gateway.AuditEventUnmatched] != 1 {
		t.Errorf("audit records %v, want 1 refused and 1 unmatched", recs)
	}
}

// A CloudEvent in binary mode and one in structured mode each start one
// remediation; an event that matches no trigger starts none and is
// recorded; a resolved alert is signalled to its remediation.
func TestIntakeCloudEventsUnmatchedResolved(t *testing.T) {
	door := startIntakeDoor(t)
	client := &http.Client{Timeout: time.Minute}
	id := unique("ce")
	binary := map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.cart.down", "ce-source": "urn:it:monitor", "ce-id": id + "-b"}
	code, answer, err := intakePost(client, door.url+gateway.PathCloudEvents, []byte(`{"labels":{"namespace":"it-shop"}}`), binary)
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"started"`) {
		t.Fatalf("binary mode: %d %s %v", code, answer, err)
	}
	structured := fmt.Appendf(nil, `{"specversion":"1.0","type":"com.example.cart.down","source":"urn:it:monitor","id":%q,
		"datacontenttype":"application/json","data":{"labels":{"namespace":"it-shop"}}}`, id+"-s")
	code, answer, err = intakePost(client, door.url+gateway.PathCloudEvents, structured, map[string]string{"Content-Type": intake.CloudEventsMediaType})
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"started"`) {
		t.Fatalf("structured mode: %d %s %v", code, answer, err)
	}
	other := bytes.Replace(structured, []byte("cart.down"), []byte("cart.slow"), 1)
	code, answer, err = intakePost(client, door.url+gateway.PathCloudEvents, other, map[string]string{"Content-Type": intake.CloudEventsMediaType})
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"unmatched"`) {
		t.Fatalf("unmatched: %d %s %v", code, answer, err)
	}

	fp := unique("resolving")
	if code, answer, err = intakePost(client, door.url+gateway.PathAlertmanager, alertPost(fp, "firing"), nil); err != nil || code != http.StatusAccepted {
		t.Fatalf("firing: %d %s %v", code, answer, err)
	}
	code, answer, err = intakePost(client, door.url+gateway.PathAlertmanager, alertPost(fp, "resolved"), nil)
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"resolved"`) {
		t.Fatalf("resolved: %d %s %v", code, answer, err)
	}
	wantRemediations(t, door.queue, 3)
	signals := 0
	for _, ev := range fetchHistory(t, incidentID("it-replicas", fp)).Events {
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalIncidentResolved {
			signals++
		}
	}
	if signals != 1 {
		t.Errorf("%d %s signals in the remediation's history, want 1", signals, workflows.SignalIncidentResolved)
	}
	door.intake.Close()
	recs := door.sink.count()
	if recs[gateway.AuditEventStarted] != 3 || recs[gateway.AuditEventUnmatched] != 1 || recs[gateway.AuditEventResolved] != 1 {
		t.Errorf("audit records %v, want 3 started, 1 unmatched, 1 resolved", recs)
	}
}

// A CloudEvent published on NATS JetStream starts one remediation; the same
// event published again joins it.
func TestIntakeNATSMessage(t *testing.T) {
	door := startIntakeDoor(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, subject := strings.ToUpper(strings.ReplaceAll(unique("it_events"), "-", "_")), unique("it-events")
	cons, err := intake.NewConsumer(ctx, intake.ConsumerOptions{URL: stack.nats.URL, Stream: stream, Subject: subject + ".>", Durable: "it", CreateStream: true, Logger: stack.logger}, door.dispatcher)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	nc, err := nats.Connect(stack.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	event := fmt.Appendf(nil, `{"specversion":"1.0","type":"com.example.cart.down","source":"urn:it:nats","id":%q,"data":{"labels":{"namespace":"it-shop"}}}`, unique("nats"))
	for range 2 {
		if _, err := js.Publish(ctx, subject+".cart", event); err != nil {
			t.Fatal(err)
		}
	}
	wantRemediations(t, door.queue, 1)
	waitFor(t, "both messages acknowledged", func() (bool, error) {
		c, err := js.Consumer(ctx, stream, "it")
		if err != nil {
			return false, err
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream == 2 && info.NumAckPending == 0, err
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("consumer: %v", err)
	}
}

// Start tells a start from a join exactly, through the interceptor and
// without it (from the run's start-request memo).
func TestStartTellsJoined(t *testing.T) {
	queue := unique("reins-joined")
	for name, c := range map[string]sdkclient.Client{"interceptor": intakeClient(t), "memo": stack.client} {
		p := plan("staging", step(remediation.ActionCordon, remediation.KindNode, "", "node-x", remediation.Params{}))
		for i, want := range []bool{false, true, true} {
			_, joined, err := workflows.Start(context.Background(), c, queue, workflows.RemediationInput{Plan: p})
			if err != nil {
				t.Fatal(err)
			}
			if joined != want {
				t.Errorf("%s: start %d joined %v, want %v", name, i, joined, want)
			}
		}
	}
}

// The real `reins gateway`, killed with SIGKILL while it takes 300 events
// from NATS and started again: every event starts its remediation, none
// starts two; its HTTP door (a hashed token in the config) starts one more.
func TestIntakeGatewayKilledMidBurst(t *testing.T) {
	bin := buildReins(t)
	dir := t.TempDir()
	queue := unique("reins-killed")
	stream := strings.ToUpper(strings.ReplaceAll(queue, "-", "_"))
	subject := queue + ".events"
	keyFile := filepath.Join(dir, "codec.key")
	if err := codec.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "gateway-token")
	if err := os.WriteFile(tokenFile, []byte("gateway-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	triggers := strings.ReplaceAll(intakeTriggers, "\n", "\n    ")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	tokenSum := sha256.Sum256([]byte(intakeToken))
	cfg := fmt.Sprintf(`task_queue: %s
codec: {key_file: %s}
gateway: {listen: %q, token_file: %s}
audit: {file: {path: %s}}
intake:
  tokens: [%x]
  nats: {url: %q, stream: %s, subject: "%s.>", durable: gateway, ack_wait: 2s, create_stream: true}
  triggers:%s
`, queue, keyFile, listen, tokenFile, filepath.Join(dir, "audit.jsonl"), tokenSum, stack.nats.URL, stream, subject, triggers)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gatewayProcess := func(name string) *exec.Cmd {
		logFile, err := os.Create(filepath.Join(stack.dir, queue+"-"+name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "gateway", "--log-level", "warn")
		cmd.Env = append(os.Environ(),
			"TEMPORAL_ADDRESS="+stack.temporal.Address, "TEMPORAL_NAMESPACE="+stack.temporal.Namespace, "REINS_CONFIG="+cfgPath)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
		})
		return cmd
	}

	ctx := context.Background()
	nc, err := nats.Connect(stack.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	first := gatewayProcess("first")
	waitFor(t, "the gateway's durable consumer", func() (bool, error) {
		_, err := js.Consumer(ctx, stream, "gateway")
		return err == nil, err
	})

	const total = 300
	prefix := unique("killed")
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		for i := range total {
			msg := nats.NewMsg(fmt.Sprintf("%s.%d", subject, i))
			msg.Header.Set(intake.KindHeader, string(intake.KindAlertmanager))
			msg.Data = alertPost(fmt.Sprintf("%s-%d", prefix, i), "firing")
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				pubDone <- err
				return
			}
			published.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		pubDone <- nil
	}()
	query := fmt.Sprintf("TaskQueue = '%s'", queue)
	waitFor(t, "the first gateway mid-burst", func() (bool, error) {
		return published.Load() >= total/2 && intakeCount(t, query) > 0, nil
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := intakeCount(t, query)
	if before >= total {
		t.Fatalf("%d remediations before the kill: the kill was not mid-burst", before)
	}
	gatewayProcess("second")
	// The restarted gateway's HTTP door starts one more.
	client := &http.Client{Timeout: 10 * time.Second}
	waitFor(t, "the second gateway serving", func() (bool, error) {
		resp, err := client.Get("http://" + listen + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK, err
	})
	code, answer, err := intakePost(client, "http://"+listen+gateway.PathAlertmanager, alertPost(prefix+"-http", "firing"), nil)
	if err != nil || code != http.StatusAccepted || !strings.Contains(string(answer), `"result":"started"`) {
		t.Fatalf("HTTP door of reins gateway: %d %s %v", code, answer, err)
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	wantRemediations(t, queue, total+1)
	waitFor(t, "every message acknowledged", func() (bool, error) {
		c, err := js.Consumer(ctx, stream, "gateway")
		if err != nil {
			return false, err
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream == total && info.NumAckPending == 0 && info.NumPending == 0, err
	})
	t.Logf("killed with %d of %d remediations visible; %d after the restart", before, total, intakeCount(t, query)-1)
}

// BenchmarkIntakeAck measures the gateway's ack latency for Alertmanager
// posts under the burst (32 concurrent senders, 90 % duplicates): each op is
// one post, answered once Temporal accepted its start.
//
//	go test -tags integration ./integration/ -run '^$' -bench IntakeAck -benchtime 1000x
func BenchmarkIntakeAck(b *testing.B) {
	door := startIntakeDoor(b)
	fingerprints := max(1, b.N/10)
	b.ResetTimer()
	lat, results := burst(b, door.url, unique("bench"), b.N, fingerprints, 32)
	b.StopTimer()
	if results[intake.ResultStarted] != fingerprints {
		b.Errorf("%d started, want %d", results[intake.ResultStarted], fingerprints)
	}
	b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, "p99-ms")
}

// BenchmarkIntakeAckQueued is BenchmarkIntakeAck with queued delivery: each
// post is answered once JetStream stored it; the consumer then starts one
// remediation per fingerprint (waited for, after the timer).
//
//	go test -tags integration ./integration/ -run '^$' -bench IntakeAckQueued -benchtime 1000x
func BenchmarkIntakeAckQueued(b *testing.B) {
	door := startQueuedIntakeDoor(b)
	fingerprints := max(1, b.N/10)
	b.ResetTimer()
	lat, results := burst(b, door.url, unique("qbench"), b.N, fingerprints, 32)
	b.StopTimer()
	if results[intake.ResultQueued]+results[intake.ResultDuplicate] != b.N {
		b.Errorf("answers %v, want %d queued or duplicate", results, b.N)
	}
	wantRemediations(b, door.queue, fingerprints)
	b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, "p99-ms")
}
