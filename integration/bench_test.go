//go:build integration

package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// BenchmarkStartToFirstWrite measures the time from starting a remediation
// (the client call `reins start` makes) to its first write landing in the
// Kubernetes API (the Deployment carrying its annotation), for a one-step
// plan with policy, before-state capture and the action in between. It
// reports p50 and p99 besides the mean.
//
//	go test -tags integration ./integration/ -run '^$' -bench StartToFirstWrite -benchtime 30x
func BenchmarkStartToFirstWrite(b *testing.B) {
	w := startWorker(b, "testdata/allow-all")
	ns := namespace(b)
	deployment(b, ns, "bench", 1, "registry.example/bench:v1")
	ctx := context.Background()
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := plan("staging", step(remediation.ActionScale, remediation.KindDeployment, ns, "bench", replicas(int32(2+i%2))))
		watcher, err := stack.kc.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=bench"})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		run, _, err := workflows.Start(ctx, stack.client, w.cfg.TaskQueue, workflows.RemediationInput{Plan: p})
		if err != nil {
			b.Fatal(err)
		}
		for ev := range watcher.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			if d, ok := ev.Object.(interface{ GetAnnotations() map[string]string }); ok && d.GetAnnotations()[remediation.AnnotationRemediation] == p.ID {
				samples = append(samples, time.Since(start))
				break
			}
		}
		watcher.Stop()
		b.StopTimer()
		if st, err := workflows.Result(ctx, run); err != nil || st.State != remediation.StateCompleted {
			b.Fatalf("remediation ended %s: %v", st.State, err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	p50, p99 := percentiles(samples)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
}
