//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// buildReins builds the reins binary once per test binary run.
func buildReins(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(stack.dir, "reins")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/reins")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build reins: %v\n%s", err, out)
	}
	return bin
}

// workerProcess runs `reins worker` as its own process.
func workerProcess(t *testing.T, bin, configPath, name string) *exec.Cmd {
	t.Helper()
	log, err := os.Create(filepath.Join(stack.dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "worker", "--log-level", "warn")
	cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+stack.temporal.Address,
		"TEMPORAL_NAMESPACE="+stack.temporal.Namespace,
		"REINS_CONFIG="+configPath,
		"KUBECONFIG="+stack.kube.KubeconfigPath,
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	return cmd
}

// A worker killed with SIGKILL while a step is verifying, and a new worker
// started: the remediation completes, no step is applied twice, nothing is lost.
func TestWorkerKilledMidStep(t *testing.T) {
	bin := buildReins(t)
	queue := unique("reins-crash")
	cfgPath := filepath.Join(stack.dir, queue+".yaml")
	policyDir, err := filepath.Abs("testdata/allow-all")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("task_queue: %s\npolicy_dir: %s\ncredentials: static\naudit:\n  nats:\n    url: %s\n", queue, policyDir, stack.nats.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := namespace(t)
	// minReadySeconds keeps each rollout, and so each verification, going for seconds.
	n := int32(2)
	labels := map[string]string{"app": "slow"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n, MinReadySeconds: 4,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/slow:v1"}}},
			},
		},
	}
	if _, err := stack.kc.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := devstack.WaitRollout(ctx, stack.kc, ns, "slow", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	gen0 := getDeployment(t, ns, "slow").Generation

	first := workerProcess(t, bin, cfgPath, queue+"-first")
	p := plan("staging",
		step(remediation.ActionSetImage, remediation.KindDeployment, ns, "slow", remediation.Params{Container: "app", Image: "registry.example/slow:v2"}),
		step(remediation.ActionScale, remediation.KindDeployment, ns, "slow", replicas(3)))
	run, _, err := workflows.Start(ctx, stack.client, queue, workflows.RemediationInput{Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "step 0 verifying", func() (bool, error) {
		st, err := workflows.GetStatus(ctx, stack.client, run.GetID())
		return err == nil && st.Steps[0].State == remediation.StepVerifying, err
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	workerProcess(t, bin, cfgPath, queue+"-second")

	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := workflows.Result(wctx, run)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, remediation.StateCompleted)
	got := getDeployment(t, ns, "slow")
	if got.Generation != gen0+2 || *got.Spec.Replicas != 3 || got.Spec.Template.Spec.Containers[0].Image != "registry.example/slow:v2" {
		t.Errorf("deployment generation %d (want %d), replicas %d, image %s", got.Generation, gen0+2, *got.Spec.Replicas, got.Spec.Template.Spec.Containers[0].Image)
	}
	// Each step's action ran to completion exactly once.
	completed := map[int64]string{}
	executes := 0
	for _, ev := range fetchHistory(t, st.ID).Events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			completed[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if completed[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] == remediation.ActivityExecute {
				executes++
			}
		}
	}
	if executes != 2 {
		t.Errorf("%d Execute activities completed, want 2 (one per step)", executes)
	}
	rsets, err := stack.kc.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=slow"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rsets.Items) != 2 {
		t.Errorf("%d ReplicaSets, want 2 (the original and one for v2)", len(rsets.Items))
	}
	recordHistory(t, st.ID, "TestWorkerKilledMidStep-"+st.ID)
	wantAuditChain(t, workers.AuditConfig{NATS: workers.AuditNATSConfig{URL: stack.nats.URL, Stream: audit.DefaultStream, Subject: audit.DefaultSubjectPrefix}}, st)
}
