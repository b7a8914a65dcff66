package workflows

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// The audit trail of a remediation: the workflow notes each transition with
// record(); one workflow goroutine (the auditor) turns the notes, in order,
// into hash-chained records (remediation.NewAuditRecord) and delivers each
// through the ActivityRecordAudit activity before building the next. So:
//   - a record's bytes are fixed in workflow code and in history before any
//     sink sees them; a retried activity delivers the same bytes (no gap, no
//     duplicate: sinks keep one copy per id);
//   - records reach the sinks in chain order, one at a time;
//   - prev is the id the previous activity returned (from history), so the
//     chain stays linked to what was delivered even across worker upgrades;
//   - the remediation never waits for the sinks to act; it waits for every
//     record to be delivered only before it ends.

// auditor is the remediation's audit chain.
type auditor struct {
	source, subject, runID string
	queue                  []note
	closed, done           bool
	seq                    int64
	prev                   string
	// held reports whether new records must wait (run.acting).
	held func() bool
}

// note is a transition waiting for its record.
type note struct {
	typ  string
	at   time.Time
	data json.RawMessage
}

func newAuditor(ctx workflow.Context) *auditor {
	info := workflow.GetInfo(ctx)
	return &auditor{source: remediation.AuditSource(info.Namespace), subject: info.WorkflowExecution.ID, runID: info.WorkflowExecution.RunID}
}

// start runs the auditor on a disconnected context: neither an abort nor a
// cancellation stops the trail.
func (a *auditor) start(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, a.loop)
}

func (a *auditor) loop(ctx workflow.Context) {
	logger := workflow.GetLogger(ctx)
	for {
		_ = workflow.Await(ctx, func() bool { return (len(a.queue) > 0 && !a.held()) || a.closed })
		if len(a.queue) == 0 {
			a.done = true
			return
		}
		n := a.queue[0]
		a.queue = a.queue[1:]
		a.seq++
		data, rec, err := remediation.NewAuditRecord(a.source, a.subject, a.runID, n.typ, a.seq, a.prev, n.at, n.data)
		if err != nil {
			// Only a bug gets here (every field is set by this code).
			logger.Error("audit record not built", "remediation", a.subject, "type", n.typ, "seq", a.seq, "error", err)
			a.seq--
			continue
		}
		var res remediation.RecordAuditResult
		err = workflow.ExecuteActivity(withActivity(ctx, auditOptions("audit "+rec.Label())),
			remediation.ActivityRecordAudit, remediation.RecordAuditInput{Record: data}).Get(ctx, &res)
		switch {
		case err != nil:
			// Only a record the activity finds invalid gets here (every other
			// failure is retried): the chain shows the gap.
			logger.Error("audit record not delivered", "remediation", a.subject, "record", rec.Label(), "error", err)
			a.prev = rec.ID
		case res.ID != "":
			a.prev = res.ID
		default:
			a.prev = rec.ID
		}
	}
}

// flush waits until every noted transition is delivered. After it, record
// must not be called.
func (a *auditor) flush(ctx workflow.Context) {
	a.closed = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return a.done })
}

// record notes a transition at the current workflow time.
func (r *run) record(ctx workflow.Context, typ string, data any) {
	raw, err := remediation.AuditData(data)
	if err != nil {
		workflow.GetLogger(ctx).Error("audit data not encoded", "remediation", r.status.ID, "type", typ, "error", err)
		raw = json.RawMessage(`{"error":` + strconv.Quote(err.Error()) + `}`)
	}
	r.audit.queue = append(r.audit.queue, note{typ: typ, at: workflow.Now(ctx).UTC(), data: raw})
}

// auditOptions retry until the sinks take the record: a record is never
// dropped because a sink was down. Heartbeats let a killed worker's attempt
// be retried within seconds.
func auditOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{remediation.ErrAuditInvalid},
		},
		Summary: summary,
	}
}

// stepRef is the audit view of step i.
func (r *run) stepRef(i int) remediation.AuditStep {
	st := r.status.Steps[i]
	return remediation.AuditStep{Step: i, Description: st.Description, Target: st.Target, Digest: st.Digest}
}

func (r *run) recordStarted(ctx workflow.Context) {
	p := r.plan
	d := remediation.AuditStartedData{
		Incident:    p.Incident,
		Requester:   p.Requester,
		Environment: p.Environment,
		Explanation: p.Explanation,
		DryRun:      p.DryRun,
		PlanDigest:  r.status.PlanDigest,
		Steps:       make([]remediation.AuditPlannedStep, 0, len(p.Steps)),
	}
	for i, s := range p.Steps {
		d.Steps = append(d.Steps, remediation.AuditPlannedStep{
			AuditStep: r.stepRef(i), Action: s.Action, Justification: s.Justification, Irreversible: s.Action.Irreversible(),
		})
	}
	r.record(ctx, remediation.AuditStarted, d)
}

func (r *run) recordEnded(ctx workflow.Context) {
	d := remediation.AuditEndedData{State: r.status.State, Reason: r.status.Reason, Steps: make([]remediation.AuditStepState, 0, len(r.status.Steps))}
	for _, st := range r.status.Steps {
		d.Steps = append(d.Steps, remediation.AuditStepState{Step: st.Index, State: st.State})
	}
	r.record(ctx, remediation.AuditEnded, d)
}

// recordLease notes the issue and revocation of a credential used for step i.
func (r *run) recordLease(ctx workflow.Context, i int, forWhat string, lease *remediation.LeaseInfo, between func()) {
	if lease == nil || lease.LeaseID == "" {
		between()
		return
	}
	d := remediation.AuditCredentialData{AuditStep: r.stepRef(i), For: forWhat, LeaseID: lease.LeaseID, Role: lease.Role, Namespace: lease.Namespace}
	r.record(ctx, remediation.AuditCredentialIssued, d)
	between()
	if lease.Revoked {
		r.record(ctx, remediation.AuditCredentialRevoked, d)
	} else {
		r.record(ctx, remediation.AuditCredentialRevokeFailed, d)
	}
}

// recordFailedLease is recordLease for an action or undo that failed with
// err: the credential its last attempt used travels in err's details (an
// activity attempt that minted one and failed). Earlier attempts' credentials
// are in Vault's audit log only.
func (r *run) recordFailedLease(ctx workflow.Context, i int, forWhat string, err error, between func()) {
	var lease *remediation.LeaseInfo
	if appErr, ok := errors.AsType[*temporal.ApplicationError](err); ok && appErr.HasDetails() {
		var l remediation.LeaseInfo
		if appErr.Details(&l) == nil && l.LeaseID != "" {
			lease = &l
		}
	}
	if lease == nil || workflow.GetVersion(ctx, failedLeaseChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		between()
		return
	}
	r.recordLease(ctx, i, forWhat, lease, between)
}

// approvers lists who co-signed step i.
func (r *run) approvers(i int) []string {
	var out []string
	for _, a := range r.status.Steps[i].Approvals {
		if a.Counted && a.Verdict == remediation.VerdictApprove {
			out = append(out, a.Approver.ID)
		}
	}
	return out
}

// actionSummary is the Temporal UI's line for a step's action, e.g. "scale
// shop/deployment/checkout 3→6 — approved by alice".
func (r *run) actionSummary(i int, before remediation.Snapshot) string {
	s := remediation.DescribeChange(r.plan.Steps[i], before)
	if names := r.approvers(i); len(names) > 0 {
		s += " — approved by " + joinNames(names)
	} else if d := r.status.Steps[i].Decision; d != nil {
		s += " — allowed by policy (" + string(d.Risk) + " risk)"
	}
	if r.plan.DryRun {
		s += " (dry run)"
	}
	return s
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			out += " and "
		default:
			out += ", "
		}
		out += n
	}
	return out
}
