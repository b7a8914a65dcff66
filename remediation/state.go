package remediation

// Effect is a policy decision's verdict on a step.
type Effect string

// Effects. Anything that is not allow or cosign is deny.
const (
	EffectAllow  Effect = "allow"
	EffectCosign Effect = "cosign"
	EffectDeny   Effect = "deny"
)

// Risk is the policy's estimate of a step's risk.
type Risk string

// Risks, from least to most.
const (
	RiskLow      Risk = "low"
	RiskMedium   Risk = "medium"
	RiskHigh     Risk = "high"
	RiskCritical Risk = "critical"
)

// Decision is the policy's verdict on one step. It is recorded in history and
// shown to approvers.
type Decision struct {
	Effect Effect `json:"effect"`
	// Approvers is how many distinct humans must co-sign (cosign only).
	Approvers int `json:"approvers,omitempty"`
	// Group is who may co-sign (cosign only).
	Group   string   `json:"group,omitempty"`
	Risk    Risk     `json:"risk"`
	Reasons []string `json:"reasons"`
	// Bundle is the SHA-256 digest of the policy bundle that decided.
	Bundle string `json:"bundle"`
	// EscalationGroup is asked after EscalateAfterSeconds without quorum (cosign only).
	EscalationGroup string `json:"escalation_group,omitempty"`
	// EscalateAfterSeconds and TimeoutSeconds bound the wait for co-signers;
	// zero means the worker's configured defaults (15 and 60 minutes).
	EscalateAfterSeconds int `json:"escalate_after_seconds,omitempty"`
	TimeoutSeconds       int `json:"timeout_seconds,omitempty"`
}

// Snapshot is the state of a target that a step may change, captured before
// the step acts. A compensation sets the object back to it.
type Snapshot struct {
	// Exists is false when the object was not found.
	Exists bool `json:"exists"`
	// UID identifies the object, so a compensation never touches a namesake.
	UID string `json:"uid,omitempty"`
	// Replicas of a Deployment or StatefulSet.
	Replicas *int32 `json:"replicas,omitempty"`
	// Images of the pod template's containers, in spec order.
	Images []ContainerImage `json:"images,omitempty"`
	// PreviousImages are the images of the workload's earlier revisions
	// (ReplicaSets or ControllerRevisions), newest first, for rollback rules.
	PreviousImages []string `json:"previous_images,omitempty"`
	// RestartedAt is the pod template's restart stamp ("" when absent).
	RestartedAt string `json:"restarted_at,omitempty"`
	// Unschedulable of a Node.
	Unschedulable *bool `json:"unschedulable,omitempty"`
	// Quarantine is the pod's QuarantineLabel value ("" when absent).
	Quarantine string `json:"quarantine,omitempty"`
	// QuarantinePolicy reports whether the pod's quarantine NetworkPolicy existed.
	QuarantinePolicy bool `json:"quarantine_policy,omitempty"`
	// Phase of a Pod.
	Phase string `json:"phase,omitempty"`
	// Labels of the object, for policies.
	Labels map[string]string `json:"labels,omitempty"`
}

// ContainerImage is one container's image.
type ContainerImage struct {
	Container string `json:"container"`
	Image     string `json:"image"`
}

// Image returns the image of the named container and whether it exists.
func (s Snapshot) Image(container string) (string, bool) {
	for _, c := range s.Images {
		if c.Container == container {
			return c.Image, true
		}
	}
	return "", false
}

// State is where a remediation is.
type State string

// States of a remediation. Completed is the only successful end.
const (
	StateRunning   State = "Running"
	StateCompleted State = "Completed"
	// StateRejected: the plan failed validation; nothing ran.
	StateRejected State = "Rejected"
	// StateDenied: policy or an approver denied a step (or approval timed out);
	// completed steps were compensated.
	StateDenied State = "Denied"
	// StateAborted: a human aborted; completed steps were compensated.
	StateAborted State = "Aborted"
	// StateRolledBack: a step or its verification failed; completed steps were compensated.
	StateRolledBack State = "RolledBack"
	// StateNeedsHuman: a compensation kept failing; the cluster may be half-changed.
	StateNeedsHuman State = "NeedsHuman"
)

// StepState is where one step is.
type StepState string

// Step states.
const (
	StepPending          StepState = "pending"
	StepEvaluating       StepState = "evaluating"
	StepAwaitingApproval StepState = "awaiting-approval"
	StepRunning          StepState = "running"
	StepVerifying        StepState = "verifying"
	StepDone             StepState = "done"
	StepFailed           StepState = "failed"
	StepDenied           StepState = "denied"
	StepCompensating     StepState = "compensating"
	StepCompensated      StepState = "compensated"
	// StepCompensationFailed: the undo kept failing; a human must look.
	StepCompensationFailed StepState = "compensation-failed"
	// StepNotCompensated: the step was irreversible; it stays as it is.
	StepNotCompensated StepState = "irreversible"
	StepSkipped        StepState = "skipped"
)
