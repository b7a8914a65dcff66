//go:build integration

package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// worker is an in-process reins worker on its own task queue.
type worker struct {
	cfg    workers.Config
	signer ed25519.PrivateKey
}

// startWorker runs a worker with the given policy folder ("" = the built-in
// bundle) until the test ends.
func startWorker(t testing.TB, policyDir string, opts ...func(*workers.Config)) worker {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := workers.DefaultConfig()
	cfg.TaskQueue = unique("reins-it")
	cfg.PolicyDir = policyDir
	cfg.VerifyTimeout = workers.Duration(2 * time.Minute)
	cfg.Approvals.TrustedKeys = map[string]string{"it": base64.StdEncoding.EncodeToString(pub)}
	cfg.Audit.NATS.URL = stack.nats.URL
	cfg.Audit.File.Path = filepath.Join(stack.dir, cfg.TaskQueue+"-audit.jsonl")
	for _, o := range opts {
		o(&cfg)
	}
	// These tests exercise the actions with the admin identity; the Vault
	// credentials have their own tests (vault_test.go).
	cfg.Credentials = workers.CredentialsStatic
	runWorker(t, cfg, stack.kc)
	return worker{cfg: cfg, signer: priv}
}

// runWorker runs a worker with cfg and the given own identity until the test ends.
func runWorker(t testing.TB, cfg workers.Config, kube kubernetes.Interface) {
	t.Helper()
	w, err := workers.NewWorker(cfg, stack.client, kube, stack.logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

// startAwaiting starts p on w and waits until step i awaits co-signature.
func (w worker) startAwaiting(t testing.TB, ctx context.Context, p remediation.Plan, i int) (sdkclient.WorkflowRun, workflows.Status) {
	t.Helper()
	run, _, err := workflows.Start(ctx, stack.client, w.cfg.TaskQueue, workflows.RemediationInput{Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.Status
	waitFor(t, fmt.Sprintf("step %d awaiting approval", i), func() (bool, error) {
		st, err = workflows.GetStatus(ctx, stack.client, run.GetID())
		return err == nil && st.Steps[i].State == remediation.StepAwaitingApproval, err
	})
	return run, st
}

// run starts plan on w and waits for its final status.
func (w worker) run(t *testing.T, plan remediation.Plan) workflows.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, _, err := workflows.Start(ctx, stack.client, w.cfg.TaskQueue, workflows.RemediationInput{Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	st, err := workflows.Result(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	recordHistory(t, st.ID, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+"-"+st.ID)
	wantAuditChain(t, w.cfg.Audit, st)
	return st
}

// newTestGateway is a gateway (codec server and mux) with a fresh codec key,
// for a test to mount doors on.
func newTestGateway(t testing.TB) *gateway.Server {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "codec.key")
	if err := codec.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	keys, err := codec.LoadFileKeys(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Codec: &codec.Codec{Keys: keys}, Token: "codec-token-0123456789", Logger: stack.logger})
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// gatewayAudit keeps a gateway's audit records in memory.
type gatewayAudit struct {
	mu   sync.Mutex
	recs []remediation.AuditRecord
}

func (s *gatewayAudit) Name() string { return "memory" }

func (s *gatewayAudit) Store(_ context.Context, rec remediation.AuditRecord, _ []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, rec)
	return false, nil
}

func plan(env string, steps ...remediation.Step) remediation.Plan {
	return remediation.Plan{
		ID:          unique("it-remediation"),
		Incident:    remediation.Incident{Source: "integration", Fingerprint: unique("fp")},
		Requester:   remediation.Requester{Kind: remediation.RequesterAgent, Name: "sre-agent"},
		Environment: env,
		Explanation: "integration test",
		Steps:       steps,
	}
}

func step(action remediation.Action, kind, ns, name string, params remediation.Params) remediation.Step {
	return remediation.Step{
		Action:        action,
		Target:        remediation.Target{Namespace: ns, Kind: kind, Name: name},
		Params:        params,
		Justification: "integration test: exercise the real API server",
	}
}

func replicas(n int32) remediation.Params { return remediation.Params{Replicas: &n} }

// namespace creates a fresh namespace for one test.
func namespace(t testing.TB) string {
	t.Helper()
	name := unique("it")
	createNamespace(t, name)
	return name
}

// createNamespace creates namespace name and waits until pods can be admitted in it.
func createNamespace(t testing.TB, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := stack.kc.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pods need the namespace's default ServiceAccount to be admitted.
	waitFor(t, "default ServiceAccount in "+name, func() (bool, error) {
		_, err := stack.kc.CoreV1().ServiceAccounts(name).Get(context.Background(), "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// deployment creates a Deployment and waits for its rollout.
func deployment(t testing.TB, ns, name string, n int32, image string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
	ctx := context.Background()
	if _, err := stack.kc.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := devstack.WaitRollout(ctx, stack.kc, ns, name, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	return getDeployment(t, ns, name)
}

func getDeployment(t testing.TB, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := stack.kc.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantState fails unless st ended in state.
// wantCompleted waits for run's end and fails the test unless it Completed.
func wantCompleted(t *testing.T, ctx context.Context, run sdkclient.WorkflowRun) workflows.Status {
	t.Helper()
	st, err := workflows.Result(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateCompleted)
	return st
}

func wantState(t *testing.T, st workflows.Status, state remediation.State) {
	t.Helper()
	if st.State != state {
		t.Fatalf("remediation %s ended %s (%s), want %s; steps: %+v", st.ID, st.State, st.Reason, state, st.Steps)
	}
}

// isNotFound reports a Kubernetes NotFound.
func isNotFound(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status) && apierrors.IsNotFound(err)
}

// recordHistory saves the remediation's full history as JSON into
// $REINS_RECORD_HISTORIES (when set), for the replay tests of workflows/.
func recordHistory(t *testing.T, id, name string) {
	t.Helper()
	dir := os.Getenv("REINS_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	h := fetchHistory(t, id)
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fetchHistory reads a workflow's full history through Temporal's API.
func fetchHistory(t testing.TB, id string) *historypb.History {
	t.Helper()
	return fetchRunHistory(t, id, "")
}

// fetchRunHistory is the history of run runID of workflow id ("": its
// latest run).
func fetchRunHistory(t testing.TB, id, runID string) *historypb.History {
	t.Helper()
	iter := stack.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// payloadText is every payload of a history (inputs, results, signals,
// markers, failures' details) as text, for scanning.
func payloadText(h *historypb.History) string {
	var b strings.Builder
	for _, ev := range h.Events {
		walkPayloads(ev.ProtoReflect(), func(p *commonpb.Payload) {
			b.Write(p.GetData())
			b.WriteByte('\n')
		})
	}
	return b.String()
}

func walkPayloads(m protoreflect.Message, visit func(*commonpb.Payload)) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		visit(p)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				walkPayloads(v.List().Get(i).Message(), visit)
			}
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkPayloads(mv.Message(), visit)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			walkPayloads(v.Message(), visit)
		}
		return true
	})
}
