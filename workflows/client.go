package workflows

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"

	"github.com/reins-dev/reins/remediation"
)

// Client-side helpers: how the CLI, the gateway and tests drive a
// remediation. They live beside the signal and query names they use.

// Start validates the plan and starts its remediation on taskQueue. The
// workflow ID is plan.WorkflowID(): a plan for an incident that already has a
// running remediation joins it (joined is true) instead of starting another
// (conflict policy "use existing", in one request).
//
// joined is exact: on a client whose connection has StartedInterceptor
// (workers.DialTemporal installs it), from Temporal's answer to the start;
// on any other client, from the run's MemoStartRequest, which only the
// request that started the run could have set (one more request).
// A plan that fails validation starts nothing.
func Start(ctx context.Context, c sdkclient.Client, taskQueue string, in RemediationInput) (run sdkclient.WorkflowRun, joined bool, err error) {
	if err := in.Plan.Validate(); err != nil {
		return nil, false, err
	}
	summary := in.Plan.Explanation
	if len(summary) > 200 {
		summary = summary[:197] + "..."
	}
	opts := sdkclient.StartWorkflowOptions{
		ID:                       in.Plan.WorkflowID(),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            fmt.Sprintf("%s in %s, requested by %s: %s", in.Plan.Incident.Fingerprint, in.Plan.Environment, in.Plan.Requester, summary),
		StaticDetails:            planDetails(in.Plan),
	}
	request := rand.Text()
	opts.Memo = map[string]any{MemoStartRequest: request}
	report := &startReport{}
	run, err = c.ExecuteWorkflow(context.WithValue(ctx, startReportKey{}, report), opts, RemediationWorkflowName, in)
	if err != nil {
		return nil, false, fmt.Errorf("start remediation %s: %w", opts.ID, err)
	}
	if started, ok := report.get(); ok {
		return run, !started, nil
	}
	desc, err := c.DescribeWorkflow(ctx, opts.ID, run.GetRunID())
	if err != nil {
		return run, false, fmt.Errorf("remediation %s is running, but whether this request started it is unknown: %w", opts.ID, err)
	}
	var got string
	if err := desc.GetMemoValue(MemoStartRequest, &got); err != nil && !errors.Is(err, temporal.ErrNoData) {
		return run, false, fmt.Errorf("remediation %s is running, but whether this request started it is unknown: memo %s: %w", opts.ID, MemoStartRequest, err)
	}
	return run, got != request, nil
}

// MemoStartRequest is the memo field holding a random ID of the request
// that started the remediation's run (see Start).
const MemoStartRequest = "reins.start-request"

// startReport is where StartedInterceptor puts Temporal's answer for the
// start whose context carries it.
type startReport struct {
	// state is 0 before the answer, 1 for "started", 2 for "already running".
	state atomic.Int32
}

type startReportKey struct{}

func (r *startReport) get() (started, ok bool) {
	switch r.state.Load() {
	case 1:
		return true, true
	case 2:
		return false, true
	}
	return false, false
}

// StartedInterceptor is a gRPC unary client interceptor for Temporal
// clients (sdkclient.Options.ConnectionOptions.DialOptions, with
// grpc.WithChainUnaryInterceptor): it passes Temporal's answer to a
// StartWorkflowExecution request made by Start, whether it started a new
// run or returned the running one, back to Start. Other calls pass through
// untouched.
func StartedInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	report, ok := ctx.Value(startReportKey{}).(*startReport)
	if !ok {
		return nil
	}
	if resp, ok := reply.(*workflowservice.StartWorkflowExecutionResponse); ok {
		state := int32(2)
		if resp.GetStarted() {
			state = 1
		}
		report.state.Store(state)
	}
	return nil
}

// Result waits for the remediation to end and returns its final Status. err
// is nil for every ending the workflow itself reports (Completed or not: see
// Status.State); it is set only when the status cannot be had.
func Result(ctx context.Context, run sdkclient.WorkflowRun) (Status, error) {
	var st Status
	err := run.Get(ctx, &st)
	if err == nil {
		return st, nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		if derr := appErr.Details(&st); derr == nil {
			return st, nil
		}
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && canceled.HasDetails() {
		if derr := canceled.Details(&st); derr == nil {
			return st, nil
		}
	}
	return st, fmt.Errorf("remediation %s: %w", run.GetID(), err)
}

// GetStatus queries the remediation's current status (running or closed; a
// closed one needs a worker to answer).
func GetStatus(ctx context.Context, c sdkclient.Client, id string) (Status, error) {
	v, err := c.QueryWorkflow(ctx, id, "", QueryStatus)
	if err != nil {
		return Status{}, fmt.Errorf("query status of %s: %w", id, err)
	}
	var st Status
	if err := v.Get(&st); err != nil {
		return Status{}, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return st, nil
}

// Abort asks a running remediation to stop and undo its steps.
func Abort(ctx context.Context, c sdkclient.Client, id string, sig AbortSignal) error {
	if err := c.SignalWorkflow(ctx, id, "", SignalAbort, sig); err != nil {
		return fmt.Errorf("abort %s: %w", id, err)
	}
	return nil
}

// Approve sends a signed approval to the remediation's run it names (its
// current run when a.Run is "").
func Approve(ctx context.Context, c sdkclient.Client, a remediation.Approval) error {
	if err := c.SignalWorkflow(ctx, a.Remediation, a.Run, SignalApproval, a); err != nil {
		return fmt.Errorf("send approval to %s: %w", a.Remediation, err)
	}
	return nil
}

// planDetails is the plan as the Temporal UI shows it (markdown): the
// incident, who asked, why, and each step with its justification.
func planDetails(p remediation.Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Incident** %s/%s", p.Incident.Source, p.Incident.Fingerprint)
	if p.Incident.URL != "" {
		fmt.Fprintf(&b, " (%s)", p.Incident.URL)
	}
	fmt.Fprintf(&b, "\n\n**Requested by** %s in %s", p.Requester, p.Environment)
	if p.DryRun {
		b.WriteString(" (dry run)")
	}
	fmt.Fprintf(&b, "\n\n**Why** %s\n\n**Steps**\n", p.Explanation)
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%d. %s — %s\n", i+1, s.Describe(), s.Justification)
	}
	return b.String()
}
