//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	sdkclient "go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/slackapp"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// Names of the bare round trip's workflow, signal and activity.
const (
	roundTripWorkflow = "reins.bench.SignalRoundTrip"
	roundTripSignal   = "go"
	roundTripActivity = "reins.bench.Arrived"
)

// signalRoundTrip is the baseline: for each of n signals, one activity.
func signalRoundTrip(ctx workflow.Context, n int) error {
	ch := workflow.GetSignalChannel(ctx, roundTripSignal)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for range n {
		var seq int
		ch.Receive(ctx, &seq)
		if err := workflow.ExecuteActivity(ctx, roundTripActivity, seq).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// roundTrip runs signalRoundTrip on a worker of its own; arrived receives
// the time each activity started.
type roundTrip struct {
	run     sdkclient.WorkflowRun
	arrived chan time.Time
}

func startRoundTrip(b *testing.B, n int) *roundTrip {
	b.Helper()
	rt := &roundTrip{arrived: make(chan time.Time, 1)}
	queue := unique("reins-bench-rt")
	w := sdkworker.New(stack.client, queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(signalRoundTrip, workflow.RegisterOptions{Name: roundTripWorkflow})
	w.RegisterActivityWithOptions(func(context.Context, int) error {
		rt.arrived <- time.Now()
		return nil
	}, activity.RegisterOptions{Name: roundTripActivity})
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	var err error
	rt.run, err = stack.client.ExecuteWorkflow(context.Background(), sdkclient.StartWorkflowOptions{ID: unique("bench-rt"), TaskQueue: queue}, roundTripWorkflow, n)
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// once signals the workflow and returns the time until its activity ran.
func (rt *roundTrip) once(b *testing.B, seq int) time.Duration {
	start := time.Now()
	if err := stack.client.SignalWorkflow(context.Background(), rt.run.GetID(), "", roundTripSignal, seq); err != nil {
		b.Fatal(err)
	}
	select {
	case at := <-rt.arrived:
		return at.Sub(start)
	case <-time.After(30 * time.Second):
		b.Fatal("the round trip's activity did not run within 30s")
		return 0
	}
}

// vaultPace spaces the clicks: Vault's Kubernetes secrets engine talks to
// the API server through client-go's default rate limit (5 requests a
// second, bursts of 10), and each step spends six (to mint: read the
// namespace, create the service account, its role binding and a token; to
// revoke: two deletes). Clicks faster than that measure the limiter, not
// reins.
const vaultPace = 1500 * time.Millisecond

// BenchmarkApprovalToWrite measures a co-signature from the click to the
// cluster: the time from a Slack interaction request, signed as Slack signs
// it, reaching the gateway's /slack/interactions to the step's write landing
// in the Kubernetes API (seen by a watch), with the worker minting the
// step's credential from Vault as in production. Each iteration also
// measures a bare Temporal round trip on the same server: a signal to a
// workflow that then runs one activity, until the activity runs.
//
// Reported: p50 and p99 of both, their p50 ratio, and where the approval's
// time goes (p50 of each part, from the remediation's history): the gateway
// (click until the signal is in history: signature, Slack identity and
// group, the remediation's status, the signed signal), the workflow (signal
// until the write's activity starts: the approval check and the before-state
// read, both local activities, then the activity's dispatch; compare it with
// the bare round trip's same part, bare-workflow), and the action (the step's
// credential minted from Vault, then the write).
//
//	go test -tags integration ./integration/ -run '^$' -bench ApprovalToWrite -benchtime 30x
func BenchmarkApprovalToWrite(b *testing.B) {
	d := startSlackDoorWith(b, func(dir string, slack workers.SlackConfig) worker {
		cfg := vaultWorkerConfig(dir)
		cfg.Slack = slack
		return startVaultWorker(b, cfg)
	})
	ns := envNamespace(b, "bench-approval", "staging")
	rt := startRoundTrip(b, b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const before, after = "registry.example/app:1", "registry.example/app:2"

	var approval, bare, gatewayPart, workflowPart, actionPart []time.Duration
	var last time.Time
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		name := fmt.Sprintf("app-%d", i)
		deployment(b, ns, name, 1, before)
		p := plan("staging", step(remediation.ActionSetImage, remediation.KindDeployment, ns, name, remediation.Params{Container: "app", Image: after}))
		run, _ := d.w.startAwaiting(b, ctx, p, 0)
		m := d.slack.request(b, run.GetID(), "C0SRE")
		watcher, err := stack.kc.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Until(last.Add(vaultPace)))
		b.StartTimer()

		bare = append(bare, rt.once(b, i))

		body, _ := d.clickBody("U0ALICE", slackapp.ActionApprove, m.button(slackapp.ActionApprove))
		start := time.Now()
		last = start
		if status, _ := d.send(b, body, slackSigningSecret, start); status != http.StatusOK {
			b.Fatalf("the click got %d", status)
		}
		seen := written(b, watcher, after)
		approval = append(approval, seen.Sub(start))

		b.StopTimer()
		watcher.Stop()
		if st, err := workflows.Result(ctx, run); err != nil || st.State != remediation.StateCompleted {
			b.Fatalf("remediation %s ended %s: %v", run.GetID(), st.State, err)
		}
		signalled, acting := approvalTimes(b, run.GetID())
		gatewayPart = append(gatewayPart, signalled.Sub(start))
		workflowPart = append(workflowPart, acting.Sub(signalled))
		actionPart = append(actionPart, seen.Sub(acting))
		b.StartTimer()
	}
	b.StopTimer()
	if err := rt.run.Get(ctx, nil); err != nil {
		b.Fatal(err)
	}
	bareWorkflow := roundTripParts(b, rt.run.GetID())
	p50, p99 := percentiles(approval)
	b50, b99 := percentiles(bare)
	w50, _ := percentiles(workflowPart)
	bw50, _ := percentiles(bareWorkflow)
	b.ReportMetric(ms(p50), "approval-p50-ms")
	b.ReportMetric(ms(p99), "approval-p99-ms")
	b.ReportMetric(ms(b50), "bare-p50-ms")
	b.ReportMetric(ms(b99), "bare-p99-ms")
	b.ReportMetric(float64(p50)/float64(b50), "p50-ratio")
	g50, _ := percentiles(gatewayPart)
	a50, _ := percentiles(actionPart)
	b.ReportMetric(ms(g50), "gateway-p50-ms")
	b.ReportMetric(ms(w50), "workflow-p50-ms")
	b.ReportMetric(ms(bw50), "bare-workflow-p50-ms")
	b.ReportMetric(ms(a50), "action-p50-ms")
	b.Logf("%d co-signatures: signed click → Kubernetes write p50 %.1f ms, p99 %.1f ms; bare signal → activity p50 %.1f ms, p99 %.1f ms; p50 ratio %.2f",
		len(approval), ms(p50), ms(p99), ms(b50), ms(b99), float64(p50)/float64(b50))
	b.Logf("where the p50 goes: gateway %.1f ms, workflow %.1f ms (bare round trip's same part %.1f ms), credential and write %.1f ms",
		ms(g50), ms(w50), ms(bw50), ms(a50))
}

// approvalTimes reads from remediation id's history when the approval
// signal was recorded and when the write's activity started.
func approvalTimes(b *testing.B, id string) (signalled, acting time.Time) {
	execute := int64(0)
	for _, ev := range fetchHistory(b, id).Events {
		switch {
		case ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == workflows.SignalApproval && signalled.IsZero():
			signalled = ev.GetEventTime().AsTime()
		case ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == remediation.ActivityExecute:
			execute = ev.GetEventId()
		case execute != 0 && ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId() == execute && acting.IsZero():
			acting = ev.GetEventTime().AsTime()
		}
	}
	if signalled.IsZero() || acting.IsZero() {
		b.Fatalf("remediation %s: no approval signal or no write in its history", id)
	}
	return signalled, acting
}

// roundTripParts reads from the bare round trip's history the time from
// each signal to its activity's start.
func roundTripParts(b *testing.B, id string) []time.Duration {
	var signals, starts []time.Time
	for _, ev := range fetchHistory(b, id).Events {
		if ev.GetWorkflowExecutionSignaledEventAttributes() != nil {
			signals = append(signals, ev.GetEventTime().AsTime())
		}
		if ev.GetActivityTaskStartedEventAttributes() != nil {
			starts = append(starts, ev.GetEventTime().AsTime())
		}
	}
	if len(signals) != len(starts) || len(signals) == 0 {
		b.Fatalf("bare round trip %s: %d signals, %d activities", id, len(signals), len(starts))
	}
	parts := make([]time.Duration, len(signals))
	for i := range signals {
		parts[i] = starts[i].Sub(signals[i])
	}
	return parts
}

// written waits for the watch to show the deployment's container at image,
// and returns when it saw it.
func written(b *testing.B, w watch.Interface, image string) time.Time {
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("the deployment watch ended")
			}
			if dep, isDep := ev.Object.(*appsv1.Deployment); isDep && ev.Type == watch.Modified &&
				slices.ContainsFunc(dep.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Image == image }) {
				return time.Now()
			}
		case <-timeout:
			b.Fatalf("no write of %s within a minute", image)
		}
	}
}

// percentiles are the p50 and p99 of samples.
func percentiles(samples []time.Duration) (p50, p99 time.Duration) {
	return percentile(samples, 50), percentile(samples, 99)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
