package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/reins-dev/reins/remediation"
)

// Explanation is one remediation told from its Temporal history: the
// triggering event, the plan and its reasoning, then for each step the
// policy decision, the co-signatures (who, when, through what), the
// credential lease, the action (before → after), the verification and the
// compensation, and the end. It is built from the audit records the
// workflow put in its history (the inputs of its reins.audit.Record
// activities, whose hash chain it checks) and from the history's own events
// (start, close, activity attempts); never from a query.
type Explanation struct {
	ID    string `json:"id"`
	RunID string `json:"run_id"`
	// WorkflowStatus is Temporal's: Running, Completed, Failed, Canceled, …
	WorkflowStatus string                  `json:"workflow_status"`
	StartedAt      time.Time               `json:"started_at"`
	ClosedAt       *time.Time              `json:"closed_at,omitempty"`
	Incident       remediation.Incident    `json:"incident"`
	Requester      remediation.Requester   `json:"requester"`
	Environment    string                  `json:"environment"`
	Explanation    string                  `json:"explanation"`
	DryRun         bool                    `json:"dry_run,omitempty"`
	PlanDigest     string                  `json:"plan_digest,omitempty"`
	Steps          []ExplainedStep         `json:"steps"`
	Compensations  []ExplainedCompensation `json:"compensations,omitempty"`
	End            *ExplainedEnd           `json:"end,omitempty"`
	// Timeline is every transition in order, one line each.
	Timeline []TimelineEntry `json:"timeline"`
	Audit    ExplainedAudit  `json:"audit"`
}

// ExplainedStep is one step and everything that happened to it.
type ExplainedStep struct {
	Index         int                `json:"index"`
	Description   string             `json:"description"`
	Action        remediation.Action `json:"action"`
	Target        string             `json:"target"`
	Justification string             `json:"justification"`
	Digest        string             `json:"digest,omitempty"`
	Irreversible  bool               `json:"irreversible,omitempty"`

	Decision     *remediation.Decision  `json:"decision,omitempty"`
	DecidedAt    *time.Time             `json:"decided_at,omitempty"`
	CoSignature  *ExplainedRequest      `json:"cosignature,omitempty"`
	Approvals    []ExplainedApproval    `json:"approvals,omitempty"`
	Credentials  []ExplainedLease       `json:"credentials,omitempty"`
	Applied      *ExplainedAction       `json:"applied,omitempty"`
	Verification *ExplainedVerification `json:"verification,omitempty"`
	Compensation *ExplainedCompensation `json:"compensation,omitempty"`
	State        remediation.StepState  `json:"state,omitempty"`
	// Attempts counts the attempts of the step's activities (execute,
	// verify, compensate) when there were more than one each.
	Attempts map[string]int `json:"attempts,omitempty"`
}

// ExplainedRequest is a step's wait for co-signers.
type ExplainedRequest struct {
	At              time.Time  `json:"at"`
	Approvers       int        `json:"approvers"`
	Group           string     `json:"group"`
	EscalationGroup string     `json:"escalation_group,omitempty"`
	EscalateAfter   string     `json:"escalate_after"`
	Timeout         string     `json:"timeout"`
	EscalatedAt     *time.Time `json:"escalated_at,omitempty"`
	ExpiredAt       *time.Time `json:"expired_at,omitempty"`
}

// ExplainedApproval is one approval signal and what became of it.
type ExplainedApproval struct {
	At time.Time `json:"at"`
	// Outcome is "given", "rejected" (the approver denied the step) or
	// "refused" (it did not count; see Reason).
	Outcome  string               `json:"outcome"`
	Approver remediation.Approver `json:"approver"`
	Group    string               `json:"group"`
	Verdict  remediation.Verdict  `json:"verdict"`
	Comment  string               `json:"comment,omitempty"`
	SignedAt string               `json:"signed_at,omitempty"`
	KeyID    string               `json:"key_id,omitempty"`
	Reason   string               `json:"reason,omitempty"`
	Have     int                  `json:"have"`
	Needed   int                  `json:"needed"`
}

// ExplainedLease is a credential a step or its undo used.
type ExplainedLease struct {
	For       string     `json:"for"`
	LeaseID   string     `json:"lease_id"`
	Role      string     `json:"role,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ExplainedAction is a step's action.
type ExplainedAction struct {
	At      time.Time               `json:"at"`
	Change  string                  `json:"change"`
	Before  *remediation.StateBrief `json:"before,omitempty"`
	After   *remediation.StateBrief `json:"after,omitempty"`
	Changed bool                    `json:"changed"`
	DryRun  bool                    `json:"dry_run,omitempty"`
	Error   string                  `json:"error,omitempty"`
}

// ExplainedVerification is a step's verification.
type ExplainedVerification struct {
	At       time.Time `json:"at"`
	Passed   bool      `json:"passed"`
	Observed string    `json:"observed,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// ExplainedCompensation is the undo of a step.
type ExplainedCompensation struct {
	At   time.Time `json:"at"`
	Step int       `json:"step"`
	// Outcome is "applied", "failed" or "skipped" (irreversible).
	Outcome string `json:"outcome"`
	Undo    string `json:"undo"`
	Changed bool   `json:"changed"`
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ExplainedEnd is the final state.
type ExplainedEnd struct {
	At     time.Time         `json:"at"`
	State  remediation.State `json:"state"`
	Reason string            `json:"reason,omitempty"`
}

// TimelineEntry is one transition.
type TimelineEntry struct {
	At   time.Time `json:"at"`
	Seq  int64     `json:"seq"`
	Type string    `json:"type"`
	// Step is the step's index; -1 for the remediation as a whole.
	Step int    `json:"step"`
	Text string `json:"text"`
	// Deliveries is how many attempts it took to deliver the record to the
	// audit sinks, when more than one (a sink was down, or a worker died).
	Deliveries int `json:"deliveries,omitempty"`
}

// ExplainedAudit says whether the records in history form an intact chain.
type ExplainedAudit struct {
	Records int    `json:"records"`
	Head    string `json:"head,omitempty"`
	Intact  bool   `json:"intact"`
	Problem string `json:"problem,omitempty"`
}

// Explain reads remediation id's latest run's history through the Temporal
// API and explains it. dc decodes payloads (nil: the default converter; use
// the client's when payloads are encrypted).
func Explain(ctx context.Context, c sdkclient.Client, id string, dc converter.DataConverter) (Explanation, error) {
	iter := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return Explanation{}, fmt.Errorf("read the history of %s: %w", id, err)
		}
		events = append(events, ev)
	}
	e, err := ExplainHistory(events, dc)
	if err != nil {
		return e, fmt.Errorf("explain %s: %w", id, err)
	}
	e.ID = id
	return e, nil
}

// ExplainHistory explains the events of one remediation run.
func ExplainHistory(events []*historypb.HistoryEvent, dc converter.DataConverter) (Explanation, error) {
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	var e Explanation
	if len(events) == 0 || events[0].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
		return e, fmt.Errorf("the history does not start with a workflow start")
	}
	start := events[0].GetWorkflowExecutionStartedEventAttributes()
	if name := start.GetWorkflowType().GetName(); name != RemediationWorkflowName {
		return e, fmt.Errorf("workflow type %q is not a remediation (%s)", name, RemediationWorkflowName)
	}
	e.RunID = start.GetOriginalExecutionRunId()
	e.StartedAt = events[0].GetEventTime().AsTime().UTC()
	e.WorkflowStatus = "Running"
	var in RemediationInput
	if err := decode(dc, start.GetInput(), &in); err != nil {
		return e, fmt.Errorf("decode the remediation input: %w", err)
	}
	e.setPlan(in.Plan)

	type scheduled struct {
		activity string
		step     int
		record   int
	}
	activities := map[int64]scheduled{}
	var (
		raws       [][]byte
		deliveries []int
	)
	for _, ev := range events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			name := a.GetActivityType().GetName()
			s := scheduled{activity: name, step: -1, record: -1}
			switch name {
			case remediation.ActivityRecordAudit:
				var rin remediation.RecordAuditInput
				if err := decode(dc, a.GetInput(), &rin); err != nil {
					return e, fmt.Errorf("decode audit record (event %d): %w", ev.GetEventId(), err)
				}
				s.record = len(raws)
				raws = append(raws, rin.Record)
				deliveries = append(deliveries, 0)
			case remediation.ActivityExecute, remediation.ActivityVerify, remediation.ActivityCompensate:
				var ref struct {
					Index int `json:"index"`
				}
				if err := decode(dc, a.GetInput(), &ref); err == nil {
					s.step = ref.Index
				}
			}
			activities[ev.GetEventId()] = s
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			if s, ok := activities[a.GetScheduledEventId()]; ok && s.record >= 0 {
				deliveries[s.record] = int(a.GetAttempt())
			}
			if s, ok := activities[a.GetScheduledEventId()]; ok && s.step >= 0 && s.step < len(e.Steps) {
				st := &e.Steps[s.step]
				if st.Attempts == nil {
					st.Attempts = map[string]int{}
				}
				st.Attempts[activityLabel(s.activity)] += int(a.GetAttempt())
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			at := ev.GetEventTime().AsTime().UTC()
			e.ClosedAt = &at
			e.WorkflowStatus = closeStatus(ev.GetEventType())
		}
	}
	for i := range e.Steps {
		for k, n := range e.Steps[i].Attempts {
			if n <= 1 {
				delete(e.Steps[i].Attempts, k)
			}
		}
		if len(e.Steps[i].Attempts) == 0 {
			e.Steps[i].Attempts = nil
		}
	}
	e.apply(raws, deliveries)
	return e, nil
}

func activityLabel(name string) string {
	switch name {
	case remediation.ActivityExecute:
		return "execute"
	case remediation.ActivityVerify:
		return "verify"
	case remediation.ActivityCompensate:
		return "compensate"
	}
	return name
}

func closeStatus(t enumspb.EventType) string {
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		return "Completed"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		return "Failed"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		return "Canceled"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		return "Terminated"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		return "TimedOut"
	}
	return "ContinuedAsNew"
}

func decode(dc converter.DataConverter, p *commonpb.Payloads, v any) error {
	if p == nil || len(p.GetPayloads()) == 0 {
		return fmt.Errorf("no payload")
	}
	return dc.FromPayload(p.GetPayloads()[0], v)
}

func (e *Explanation) setPlan(p remediation.Plan) {
	e.Incident, e.Requester, e.Environment, e.Explanation, e.DryRun = p.Incident, p.Requester, p.Environment, p.Explanation, p.DryRun
	valid := p.Validate() == nil
	if valid {
		e.PlanDigest = p.Digest()
	}
	for i, s := range p.Steps {
		st := ExplainedStep{Index: i, Description: s.Describe(), Action: s.Action, Target: s.Target.String(),
			Justification: s.Justification, Irreversible: s.Action.Irreversible(), State: remediation.StepPending}
		if valid {
			st.Digest = p.StepDigest(i)
		}
		e.Steps = append(e.Steps, st)
	}
}

// apply checks the chain of records and folds them into the explanation;
// deliveries are the attempts each took.
func (e *Explanation) apply(raws [][]byte, deliveries []int) {
	var prev remediation.AuditRecord
	e.Audit.Intact = true
	for i, raw := range raws {
		rec, err := remediation.ParseAuditRecord(raw)
		if err != nil {
			e.auditProblem(fmt.Sprintf("record %d in history: %v", i+1, err))
			continue
		}
		switch {
		case rec.Seq != prev.Seq+1:
			e.auditProblem(fmt.Sprintf("%s follows #%d", rec.Label(), prev.Seq))
		case rec.Prev != prev.ID:
			e.auditProblem(fmt.Sprintf("%s does not link to #%d", rec.Label(), prev.Seq))
		}
		prev = rec
		e.Audit.Records++
		e.Audit.Head = rec.ID
		if e.ID == "" {
			e.ID = rec.Subject
		}
		e.fold(rec)
		if n := deliveries[i]; n > 1 {
			last := &e.Timeline[len(e.Timeline)-1]
			last.Deliveries = n
			last.Text += fmt.Sprintf(" [audit record delivered on attempt %d]", n)
		}
	}
}

func (e *Explanation) auditProblem(msg string) {
	if e.Audit.Intact {
		e.Audit.Intact, e.Audit.Problem = false, msg
	}
}

// step returns step i, or nil when i is out of range.
func (e *Explanation) step(i int) *ExplainedStep {
	if i < 0 || i >= len(e.Steps) {
		return nil
	}
	return &e.Steps[i]
}

// fold applies one record.
func (e *Explanation) fold(rec remediation.AuditRecord) {
	at := rec.Time.UTC()
	entry := TimelineEntry{At: at, Seq: rec.Seq, Type: rec.Type, Step: -1}
	var ref remediation.AuditStep
	_ = json.Unmarshal(rec.Data, &ref)
	st := e.step(ref.Step)
	stepScoped := st != nil && rec.Type != remediation.AuditStarted && rec.Type != remediation.AuditEnded
	if stepScoped {
		entry.Step = ref.Step
	}
	switch rec.Type {
	case remediation.AuditStarted:
		var d remediation.AuditStartedData
		if json.Unmarshal(rec.Data, &d) == nil {
			e.Incident, e.Requester, e.Environment, e.Explanation, e.DryRun = d.Incident, d.Requester, d.Environment, d.Explanation, d.DryRun
			if d.PlanDigest != "" {
				e.PlanDigest = d.PlanDigest
			}
		}
		entry.Text = fmt.Sprintf("started: %s asks for %d step(s) in %s for incident %s/%s", e.Requester, len(e.Steps), e.Environment, e.Incident.Source, e.Incident.Fingerprint)
	case remediation.AuditPolicyDecided:
		var d remediation.AuditDecisionData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			st.Decision, st.DecidedAt = &d.Decision, &at
			entry.Text = "policy: " + decisionText(d.Decision)
		}
	case remediation.AuditApprovalRequested, remediation.AuditApprovalExpired:
		var d remediation.AuditApprovalRequestData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			if st.CoSignature == nil {
				st.CoSignature = &ExplainedRequest{At: at, Approvers: d.Approvers, Group: d.Group, EscalationGroup: d.EscalationGroup, EscalateAfter: d.EscalateAfter, Timeout: d.Timeout}
			}
			if rec.Type == remediation.AuditApprovalExpired {
				st.CoSignature.ExpiredAt = &at
				entry.Text = fmt.Sprintf("co-signature expired: %d of %d within %s; the step is denied", d.Counted, d.Approvers, d.Timeout)
			} else {
				entry.Text = fmt.Sprintf("co-signature requested: %d from %s", d.Approvers, d.Group)
				if d.EscalationGroup != "" {
					entry.Text += fmt.Sprintf(", %s too after %s", d.EscalationGroup, d.EscalateAfter)
				}
				entry.Text += ", denied after " + d.Timeout
			}
		}
	case remediation.AuditApprovalEscalated:
		if st != nil {
			if st.CoSignature != nil {
				st.CoSignature.EscalatedAt = &at
			}
			entry.Text = "co-signature escalated"
			if st.CoSignature != nil && st.CoSignature.EscalationGroup != "" {
				entry.Text += ": " + st.CoSignature.EscalationGroup + " may co-sign too"
			}
		}
	case remediation.AuditApprovalGiven, remediation.AuditApprovalRejected, remediation.AuditApprovalRefused:
		var d remediation.AuditApprovalData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			a := ExplainedApproval{At: at, Outcome: strings.TrimPrefix(rec.Type, "reins.approval."), Approver: d.Approver, Group: d.Group,
				Verdict: d.Verdict, Comment: d.Comment, SignedAt: d.SignedAt, KeyID: d.KeyID, Reason: d.Reason, Have: d.Have, Needed: d.Needed}
			st.Approvals = append(st.Approvals, a)
			entry.Text = approvalText(a)
		}
	case remediation.AuditCredentialIssued, remediation.AuditCredentialRevoked, remediation.AuditCredentialRevokeFailed:
		var d remediation.AuditCredentialData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			if rec.Type == remediation.AuditCredentialIssued {
				st.Credentials = append(st.Credentials, ExplainedLease{For: d.For, LeaseID: d.LeaseID, Role: d.Role, Namespace: d.Namespace, IssuedAt: at})
				entry.Text = "credential issued for the " + d.For + ": lease " + d.LeaseID
				if d.Role != "" {
					entry.Text += " (role " + d.Role
					if d.Namespace != "" {
						entry.Text += ", namespace " + d.Namespace
					}
					entry.Text += ")"
				}
			} else {
				if rec.Type == remediation.AuditCredentialRevokeFailed {
					entry.Text = "credential NOT revoked when the step ended (the worker keeps retrying until its TTL): lease " + d.LeaseID
					break
				}
				for k := range st.Credentials {
					if st.Credentials[k].LeaseID == d.LeaseID {
						st.Credentials[k].RevokedAt = &at
					}
				}
				entry.Text = "credential revoked: lease " + d.LeaseID
			}
		}
	case remediation.AuditActionApplied, remediation.AuditActionFailed:
		var d remediation.AuditActionData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			st.Applied = &ExplainedAction{At: at, Change: d.Change, Before: d.Before, After: d.After, Changed: d.Changed, DryRun: d.DryRun, Error: d.Error}
			if rec.Type == remediation.AuditActionFailed {
				entry.Text = "action failed: " + d.Change + ": " + d.Error
			} else {
				entry.Text = "applied: " + d.Change
				switch {
				case d.DryRun:
					entry.Text += " (dry run: nothing changed)"
				case !d.Changed:
					entry.Text += " (already so: nothing to change)"
				}
			}
			if n := st.Attempts["execute"]; n > 1 {
				entry.Text += fmt.Sprintf(" [%d attempts]", n)
			}
		}
	case remediation.AuditVerificationPassed, remediation.AuditVerificationFailed:
		var d remediation.AuditVerificationData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			st.Verification = &ExplainedVerification{At: at, Passed: rec.Type == remediation.AuditVerificationPassed, Observed: d.Observed, Error: d.Error}
			if st.Verification.Passed {
				entry.Text = "verified: " + d.Observed
			} else {
				entry.Text = "verification failed: " + d.Error
			}
		}
	case remediation.AuditCompensationApplied, remediation.AuditCompensationFailed, remediation.AuditCompensationSkipped:
		var d remediation.AuditCompensationData
		if json.Unmarshal(rec.Data, &d) == nil && st != nil {
			c := ExplainedCompensation{At: at, Step: d.Step, Outcome: strings.TrimPrefix(rec.Type, "reins.compensation."), Undo: d.Undo, Changed: d.Changed, Summary: d.Summary, Error: d.Error}
			st.Compensation = &c
			e.Compensations = append(e.Compensations, c)
			switch rec.Type {
			case remediation.AuditCompensationApplied:
				entry.Text = "undone: " + d.Undo
				if !d.Changed {
					entry.Text += " (" + d.Summary + ")"
				}
			case remediation.AuditCompensationFailed:
				entry.Text = "undo FAILED: " + d.Undo + ": " + d.Error
			default:
				entry.Text = "not undone (irreversible): " + d.Undo
			}
		}
	case remediation.AuditEnded:
		var d remediation.AuditEndedData
		if json.Unmarshal(rec.Data, &d) == nil {
			e.End = &ExplainedEnd{At: at, State: d.State, Reason: d.Reason}
			for _, s := range d.Steps {
				if p := e.step(s.Step); p != nil {
					p.State = s.State
				}
			}
			entry.Text = "ended " + string(d.State)
			if d.Reason != "" {
				entry.Text += ": " + d.Reason
			}
		}
	}
	if entry.Text == "" {
		entry.Text = rec.Type
	}
	e.Timeline = append(e.Timeline, entry)
}

func decisionText(d remediation.Decision) string {
	s := fmt.Sprintf("%s, risk %s", d.Effect, d.Risk)
	if d.Effect == remediation.EffectCosign {
		s += fmt.Sprintf(", %d co-signer(s) from %s", d.Approvers, d.Group)
	}
	if d.Bundle != "" {
		s += " (bundle " + shortDigest(d.Bundle) + ")"
	}
	if len(d.Reasons) > 0 {
		s += ": " + strings.Join(d.Reasons, "; ")
	}
	return s
}

func approvalText(a ExplainedApproval) string {
	who := a.Approver.ID
	if a.Approver.Name != "" && a.Approver.Name != a.Approver.ID {
		who += " (" + a.Approver.Name + ")"
	}
	via := "via " + orDash(a.Approver.Source) + ", group " + orDash(a.Group)
	if a.SignedAt != "" {
		via += ", signed " + a.SignedAt
	}
	if a.KeyID != "" {
		via += " with key " + a.KeyID
	}
	switch a.Outcome {
	case "given":
		return fmt.Sprintf("approved by %s (%s): %d of %d", who, via, a.Have, a.Needed)
	case "rejected":
		s := fmt.Sprintf("rejected by %s (%s)", who, via)
		if a.Comment != "" {
			s += ": " + a.Comment
		}
		return s
	}
	return fmt.Sprintf("approval from %s refused (%s, verdict %s): %s", who, via, a.Verdict, a.Reason)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// WriteText writes the explanation for humans.
func (e Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	state := e.WorkflowStatus
	if e.End != nil {
		state = string(e.End.State)
	}
	fmt.Fprintf(&b, "remediation %s: %s\n", e.ID, state)
	fmt.Fprintf(&b, "  started %s, requested by %s in %s", e.StartedAt.Format(time.RFC3339), e.Requester, e.Environment)
	if e.DryRun {
		b.WriteString(" (dry run)")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  incident %s/%s", e.Incident.Source, e.Incident.Fingerprint)
	if e.Incident.URL != "" {
		b.WriteString(" " + e.Incident.URL)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  explanation: %s\n", e.Explanation)
	fmt.Fprintf(&b, "  plan %s, %d step(s):\n", orDash(shortDigest(e.PlanDigest)), len(e.Steps))
	for _, s := range e.Steps {
		fmt.Fprintf(&b, "    %d  %s\n       why: %s\n", s.Index, s.Description, s.Justification)
	}
	b.WriteString("\n")
	for _, t := range e.Timeline {
		scope := "       "
		if t.Step >= 0 {
			scope = fmt.Sprintf("step %-2d", t.Step)
		}
		fmt.Fprintf(&b, "%s  %s  %s\n", t.At.Format("15:04:05.000"), scope, t.Text)
	}
	if e.End == nil {
		fmt.Fprintf(&b, "%s  (no end yet: the workflow is %s)\n", strings.Repeat(" ", 12), e.WorkflowStatus)
	}
	b.WriteString("\n")
	if e.Audit.Intact {
		fmt.Fprintf(&b, "audit trail in history: %d record(s), chain intact, head %s\n", e.Audit.Records, shortDigest(e.Audit.Head))
	} else {
		fmt.Fprintf(&b, "audit trail in history: %d record(s), chain BROKEN: %s\n", e.Audit.Records, e.Audit.Problem)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
