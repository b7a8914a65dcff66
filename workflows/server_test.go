//go:build integration

package workflows

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/remediation"
)

// The workflow with fake activities on a real Temporal dev server, for what
// Temporal's test environment does not model: it answers a cancelled
// activity at once, while the server waits for an activity whose options ask
// it to.

// startServer starts a dev server and a worker running the workflow with
// f's activities on task queue tq, until the test ends.
func startServer(t *testing.T, f *fakes, tq string) sdkclient.Client {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	attrs := map[string]string{}
	for _, a := range SearchAttributes() {
		name, typ, _ := strings.Cut(a, "=")
		attrs[name] = typ
	}
	srv, err := devstack.StartTemporal(context.Background(), devstack.TemporalOptions{Dir: filepath.Join(t.TempDir(), "temporal"), SearchAttributes: attrs, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := sdkclient.Dial(sdkclient.Options{HostPort: srv.Address, Namespace: srv.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := worker.New(c, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(Remediation, workflow.RegisterOptions{Name: RemediationWorkflowName})
	f.register(w.RegisterActivityWithOptions)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return c
}

// An abort that comes while a step's write is in flight waits for the write
// to end: the undo runs after it, never before it lands.
func TestAbortDuringWriteUndoesAfterIt(t *testing.T) {
	f := newFakes()
	const tq = "reins-abort-write"
	c := startServer(t, f, tq)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan := testPlan(scaleStep("a", 4), scaleStep("b", 5))
	f.duringWrite = map[int]func(){1: func() {
		if err := Abort(ctx, c, plan.WorkflowID(), AbortSignal{Reason: "wrong incident", By: "alice"}); err != nil {
			t.Errorf("abort: %v", err)
		}
		time.Sleep(time.Second) // the write is still going when the abort lands
	}}
	run, _, err := Start(ctx, c, tq, RemediationInput{Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Result(ctx, run)
	if st.State != remediation.StateAborted {
		t.Fatalf("state %s (%v), want Aborted", st.State, err)
	}
	var order []string
	for _, call := range f.seen() {
		if strings.HasPrefix(call, "wrote") || strings.HasPrefix(call, "compensate") {
			order = append(order, call)
		}
	}
	equal(t, "write and undo order", order, []string{"wrote 1", "compensate 1", "compensate 0"})
}
