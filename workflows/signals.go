package workflows

import (
	"time"

	"github.com/reins-dev/reins/remediation"
)

// Names under which the workflow, its signals and its query are registered.
// Changing one breaks running remediations and their clients.
const (
	// RemediationWorkflowName is the registered name of Remediation.
	RemediationWorkflowName = "reins.Remediation"
	// SignalAbort asks a remediation to stop and undo what it did. Payload: AbortSignal.
	SignalAbort = "abort"
	// QueryStatus returns the remediation's Status.
	QueryStatus = "status"
)

// RemediationInput is the workflow's input.
type RemediationInput struct {
	Plan    remediation.Plan   `json:"plan"`
	Options RemediationOptions `json:"options,omitempty"`
}

// AbortSignal is the payload of SignalAbort.
type AbortSignal struct {
	Reason string `json:"reason"`
	// By is who asked (as the CLI or gateway authenticated them).
	By string `json:"by,omitempty"`
}

// Status is the remediation's state, returned by QueryStatus and as the
// workflow's result (also as the details of its failure when it did not
// complete).
type Status struct {
	ID string `json:"id"`
	// RunID is the workflow run: approvals are signed for it.
	RunID      string            `json:"run_id,omitempty"`
	State      remediation.State `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	PlanDigest string            `json:"plan_digest"`
	Requester  string            `json:"requester"`
	// RequestedBy is the requester in full, with the owner of an agent
	// requester: neither may co-sign, and the gateway refuses them early.
	RequestedBy remediation.Requester `json:"requested_by"`
	DryRun      bool                  `json:"dry_run,omitempty"`
	Steps       []StepStatus          `json:"steps"`
	// Resolved is set once the incident was signalled as resolved.
	Resolved *IncidentResolved `json:"resolved,omitempty"`
}

// StepStatus is one step's state.
type StepStatus struct {
	Index        int                   `json:"index"`
	Description  string                `json:"description"`
	Action       remediation.Action    `json:"action"`
	Target       string                `json:"target"`
	Digest       string                `json:"digest"`
	State        remediation.StepState `json:"state"`
	Irreversible bool                  `json:"irreversible,omitempty"`
	Decision     *remediation.Decision `json:"decision,omitempty"`
	Approvals    []ApprovalRecord      `json:"approvals,omitempty"`
	Escalated    bool                  `json:"escalated,omitempty"`
	Before       *remediation.Snapshot `json:"before,omitempty"`
	Changed      bool                  `json:"changed,omitempty"`
	Verified     string                `json:"verified,omitempty"`
	Compensation string                `json:"compensation,omitempty"`
	Error        string                `json:"error,omitempty"`
}

// SignalApproval carries a remediation.Approval for the step awaiting co-signature.
const SignalApproval = "approval"

// ApprovalRecord is one approval the workflow received for a step, counted or not.
type ApprovalRecord struct {
	Approver remediation.Approver `json:"approver"`
	Group    string               `json:"group"`
	Verdict  remediation.Verdict  `json:"verdict"`
	Comment  string               `json:"comment,omitempty"`
	// At is when the approver signed it (as the gateway stamped it).
	At      time.Time `json:"at,omitempty"`
	Counted bool      `json:"counted"`
	// Reason is why it was not counted.
	Reason string `json:"reason,omitempty"`
}

// SignalIncidentResolved tells a remediation that its incident resolved (for
// example Alertmanager sent the alert as resolved). The remediation records
// it; it does not stop on its own. Payload: IncidentResolved.
const SignalIncidentResolved = "incident-resolved"

// IncidentResolved is the payload of SignalIncidentResolved.
type IncidentResolved struct {
	// Source and Fingerprint identify the incident as the event named it.
	Source      string `json:"source"`
	Fingerprint string `json:"fingerprint"`
	// Trigger is the intake trigger that matched the event.
	Trigger string `json:"trigger,omitempty"`
	// At is when the incident resolved (the event's end time, else when it arrived).
	At time.Time `json:"at"`
}
