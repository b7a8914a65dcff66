package workflows

import "github.com/reins-dev/reins/remediation"

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
	ID         string            `json:"id"`
	State      remediation.State `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	PlanDigest string            `json:"plan_digest"`
	Requester  string            `json:"requester"`
	DryRun     bool              `json:"dry_run,omitempty"`
	Steps      []StepStatus      `json:"steps"`
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
	Counted  bool                 `json:"counted"`
	// Reason is why it was not counted.
	Reason string `json:"reason,omitempty"`
}
