package remediation

import (
	"encoding/json"
	"strconv"
	"time"
)

// The activity contracts between the workflow and the workers: names under
// which activities are registered (renaming a Go function must not break a
// running history) and their one input and one result. They live here, in
// the dependency-free domain package, so that workflow code never imports an
// integration and integrations never import Temporal's workflow API.
const (
	ActivityEvaluatePolicy = "reins.policy.Evaluate"
	ActivityObserve        = "reins.kubernetes.Observe"
	ActivityExecute        = "reins.kubernetes.Execute"
	ActivityVerify         = "reins.kubernetes.Verify"
	ActivityCompensate     = "reins.kubernetes.Compensate"
)

// StepRef identifies one step of one remediation.
type StepRef struct {
	Remediation string    `json:"remediation"`
	Index       int       `json:"index"`
	Step        Step      `json:"step"`
	Requester   Requester `json:"requester"`
	// Environment is the plan's environment; it chooses the Vault role the
	// step's credential is minted from.
	Environment string `json:"environment,omitempty"`
	// DryRun: server-side dry run, nothing changes.
	DryRun bool `json:"dry_run,omitempty"`
}

// PolicyInput asks for the decision on step Index of Plan.
type PolicyInput struct {
	Remediation string    `json:"remediation"`
	Plan        Plan      `json:"plan"`
	Index       int       `json:"index"`
	Now         time.Time `json:"now"`
}

// PolicyResult carries the decision.
type PolicyResult struct {
	Decision Decision `json:"decision"`
}

// ObserveInput asks for the current state of a target.
type ObserveInput struct {
	Step Step `json:"step"`
}

// ObserveResult is the target's state.
type ObserveResult struct {
	Snapshot Snapshot `json:"snapshot"`
}

// ExecuteInput acts on a step. Before is the state captured just before, and
// At a time fixed by the workflow (used where a value must be stamped, such as
// a restart), so that a retried activity writes exactly the same thing.
type ExecuteInput struct {
	StepRef
	Before Snapshot  `json:"before"`
	At     time.Time `json:"at"`
}

// ExecuteResult says what the step did.
type ExecuteResult struct {
	// Changed is false when the object was already as the step wants it.
	Changed bool     `json:"changed"`
	After   Snapshot `json:"after"`
	// Lease is the short-lived credential the step acted with; nil when it
	// used the worker's own identity.
	Lease *LeaseInfo `json:"lease,omitempty"`
}

// LeaseInfo identifies a short-lived credential by its lease: never the
// credential itself. It goes into history and the audit trail.
type LeaseInfo struct {
	// LeaseID is the Vault lease ID.
	LeaseID string `json:"lease_id"`
	// Role is the Vault role the credential was minted from.
	Role string `json:"role,omitempty"`
	// Namespace is the Kubernetes namespace the credential was scoped to
	// (where its ServiceAccount lived).
	Namespace string `json:"namespace,omitempty"`
	// Revoked reports that the lease was revoked when the activity ended.
	Revoked bool `json:"revoked"`
}

// VerifyInput waits until the step's effect is observed.
type VerifyInput struct {
	StepRef
	Before Snapshot `json:"before"`
	// Timeout bounds the wait; zero means the worker's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Deadline is the absolute time by which the step must be verified. The
	// workflow sets it once, so that retried attempts share one deadline
	// instead of each waiting Timeout again; each attempt waits until the
	// earliest of Deadline, its start plus Timeout and its own context
	// deadline, and an attempt that starts after Deadline fails at once.
	// Zero: Timeout from the attempt's start.
	Deadline time.Time `json:"deadline,omitzero"`
}

// VerifyResult says what was observed.
type VerifyResult struct {
	Observed string `json:"observed"`
}

// CompensateInput sets the step's target back to Before.
type CompensateInput struct {
	StepRef
	Before Snapshot `json:"before"`
}

// CompensateResult says whether anything had to change.
type CompensateResult struct {
	Changed bool   `json:"changed"`
	Summary string `json:"summary"`
	// Lease is the short-lived credential the undo acted with; nil when it
	// used the worker's own identity.
	Lease *LeaseInfo `json:"lease,omitempty"`
}

// Error types of non-retryable activity failures; workflows branch on them.
const (
	// ErrForbidden: the credential may not do this (Kubernetes 403, Vault 403).
	ErrForbidden = "Forbidden"
	// ErrInvalid: the object or change is invalid (Kubernetes 422/400).
	ErrInvalid = "Invalid"
	// ErrNotFound: the target does not exist.
	ErrNotFound = "NotFound"
	// ErrTargetChanged: the target is no longer the object that was observed.
	ErrTargetChanged = "TargetChanged"
	// ErrVerification: the change did not converge before the deadline.
	ErrVerification = "VerificationFailed"
)

// DescribeCompensation is one line saying what undoing s would do, given the
// state captured before it.
func DescribeCompensation(s Step, before Snapshot) string {
	t := s.Target.String()
	switch s.Action {
	case ActionScale:
		if before.Replicas != nil {
			return "scale " + t + " back to " + strconv.Itoa(int(*before.Replicas))
		}
	case ActionSetImage:
		if img, ok := before.Image(s.Params.Container); ok {
			return "set image of " + t + " container " + s.Params.Container + " back to " + img
		}
	case ActionRolloutRestart:
		if before.RestartedAt == "" {
			return "remove the restart stamp of " + t + " (rolls back to the previous pod template)"
		}
		return "restore the restart stamp of " + t + " to " + before.RestartedAt
	case ActionCordon, ActionUncordon:
		if before.Unschedulable != nil && *before.Unschedulable {
			return "cordon " + t + " again"
		}
		return "uncordon " + t
	case ActionQuarantinePod:
		return "remove the quarantine label and NetworkPolicy of " + t
	case ActionDeletePod:
		return "none: deleting a pod is irreversible"
	}
	return "restore " + t + " to its state before the step"
}

// ActivityCheckApproval is the local activity that verifies an approval's
// signature with the worker's trusted gateway keys and checks it against the
// step's ApprovalRule. Its result is recorded in history.
const ActivityCheckApproval = "reins.approval.Check"

// CheckApprovalInput is an approval and the rule it must meet.
type CheckApprovalInput struct {
	Approval Approval     `json:"approval"`
	Rule     ApprovalRule `json:"rule"`
}

// CheckApprovalResult says whether the approval counts, and if not why.
type CheckApprovalResult struct {
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// ActivityRecordAudit delivers one audit record to every configured sink,
// idempotently: the record's id is the key, so a retried activity neither
// loses nor duplicates it.
const ActivityRecordAudit = "reins.audit.Record"

// RecordAuditInput is one encoded record (see AuditRecord), delivered byte
// for byte as the workflow built it.
type RecordAuditInput struct {
	Record json.RawMessage `json:"record"`
}

// RecordAuditResult says where the record is.
type RecordAuditResult struct {
	// ID is the record's id (its hash), the next record's prev.
	ID string `json:"id"`
	// Stored lists the sinks that stored it in this attempt, Present the ones
	// that already had it (a retry after a delivery that was not acknowledged).
	Stored  []string `json:"stored,omitempty"`
	Present []string `json:"present,omitempty"`
}

// ErrAuditInvalid is the error type of an audit record that is malformed;
// retrying cannot fix it.
const ErrAuditInvalid = "AuditRecordInvalid"
