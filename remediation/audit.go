package remediation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The audit trail: every transition of a remediation is one AuditRecord, a
// CloudEvents 1.0 event in structured JSON mode. The records of one
// remediation form a hash chain:
//
//   - subject is the remediation (workflow) ID and runid its Temporal run: a
//     remediation ID can run again once closed, and each run is one chain;
//   - seq numbers them 1, 2, 3, … within the run;
//   - id is the record's own hash: the lower-case hex SHA-256 of the record's
//     exact JSON bytes with the id value left empty ("id":""). Anyone can check
//     it with a text editor and sha256sum, and it is the idempotency key of
//     every delivery (JetStream's Nats-Msg-Id, the webhook's Idempotency-Key);
//   - prev is the id of the record before it (absent on seq 1).
//
// The workflow builds each record (deterministically, from workflow time and
// state) and hands its bytes to the ActivityRecordAudit activity, which
// delivers them unchanged to every sink; a retried activity delivers the same
// bytes again, and sinks keep one copy per id.

// AuditSpecVersion is the CloudEvents version of every record.
const AuditSpecVersion = "1.0"

// AuditContentType is the content type of a record's data.
const AuditContentType = "application/json"

// AuditMediaType is the media type of a whole record (CloudEvents structured mode).
const AuditMediaType = "application/cloudevents+json"

// Audit record types (the CloudEvents type attribute), in the order they
// can happen.
const (
	// AuditStarted: the remediation started. Data: AuditStartedData.
	AuditStarted = "reins.remediation.started"
	// AuditPolicyDecided: the policy decided on a step (a failure to decide is a
	// deny). Data: AuditDecisionData.
	AuditPolicyDecided = "reins.policy.decided"
	// AuditApprovalRequested: a step waits for co-signers. Data: AuditApprovalRequestData.
	AuditApprovalRequested = "reins.approval.requested"
	// AuditApprovalNotified: the co-signature request was posted (to the
	// group, or to the escalation group), or could not be. Data: AuditNotifyData.
	AuditApprovalNotified = "reins.approval.notified"
	// AuditApprovalEscalated: the escalation group may co-sign from now on. Data: AuditStep.
	AuditApprovalEscalated = "reins.approval.escalated"
	// AuditApprovalGiven: an approval counted. Data: AuditApprovalData.
	AuditApprovalGiven = "reins.approval.given"
	// AuditApprovalRejected: an authenticated approver rejected the step
	// (verdict deny); the step is denied. Data: AuditApprovalData.
	AuditApprovalRejected = "reins.approval.rejected"
	// AuditApprovalRefused: an approval signal that does not count (bad or no
	// signature, wrong step, the requester, not in the group, already
	// counted, too early). Data: AuditApprovalData with the reason.
	AuditApprovalRefused = "reins.approval.refused"
	// AuditApprovalExpired: no quorum before the deadline; the step is denied.
	// Data: AuditApprovalRequestData.
	AuditApprovalExpired = "reins.approval.expired"
	// AuditCredentialIssued and AuditCredentialRevoked: the step's short-lived
	// credential (its lease id only). Data: AuditCredentialData.
	AuditCredentialIssued  = "reins.credential.issued"
	AuditCredentialRevoked = "reins.credential.revoked"
	// AuditCredentialRevokeFailed: the lease could not be revoked when the
	// step ended; the worker keeps retrying it until its TTL ends it.
	// Data: AuditCredentialData.
	AuditCredentialRevokeFailed = "reins.credential.revoke-failed"
	// AuditActionApplied: the step acted (before → after). Data: AuditActionData.
	AuditActionApplied = "reins.action.applied"
	// AuditActionFailed: the step could not act. Data: AuditActionData with the error.
	AuditActionFailed = "reins.action.failed"
	// AuditVerificationPassed and AuditVerificationFailed: the step's effect
	// was (not) observed. Data: AuditVerificationData.
	AuditVerificationPassed = "reins.verification.passed"
	AuditVerificationFailed = "reins.verification.failed"
	// AuditCompensationApplied, AuditCompensationFailed: a step was undone, or
	// its undo kept failing. AuditCompensationSkipped: an irreversible step
	// that was done stays as it is. Data: AuditCompensationData.
	AuditCompensationApplied = "reins.compensation.applied"
	AuditCompensationFailed  = "reins.compensation.failed"
	AuditCompensationSkipped = "reins.compensation.skipped"
	// AuditIncidentResolved: the incident this remediation answers resolved
	// (e.g. Alertmanager sent it as resolved). Data: AuditResolvedData.
	AuditIncidentResolved = "reins.incident.resolved"
	// AuditEnded: the remediation's final state. Data: AuditEndedData.
	AuditEnded = "reins.remediation.ended"
)

// Record types of the gateway's own chain (subject "gateway"): package
// gateway documents and records them.
const (
	AuditGatewaySlackRejected     = "reins.gateway.slack-rejected"
	AuditGatewayApprovalRefused   = "reins.gateway.approval-refused"
	AuditGatewayApprovalSignalled = "reins.gateway.approval-signalled"
	AuditGatewayEventUnmatched    = "reins.intake.unmatched"
	AuditGatewayEventStarted      = "reins.intake.started"
	AuditGatewayEventDuplicate    = "reins.intake.duplicate"
	AuditGatewayEventResolved     = "reins.intake.resolved"
	AuditGatewayEventRefused      = "reins.intake.refused"
	AuditGatewayAgentRefused      = "reins.agent.refused"
	AuditGatewayAgentStarted      = "reins.agent.started"
)

// AuditTypes lists every record type.
func AuditTypes() []string {
	return []string{
		AuditStarted, AuditPolicyDecided, AuditApprovalRequested, AuditApprovalNotified, AuditApprovalEscalated,
		AuditApprovalGiven, AuditApprovalRejected, AuditApprovalRefused, AuditApprovalExpired,
		AuditCredentialIssued, AuditCredentialRevoked, AuditCredentialRevokeFailed, AuditActionApplied, AuditActionFailed,
		AuditVerificationPassed, AuditVerificationFailed,
		AuditCompensationApplied, AuditCompensationFailed, AuditCompensationSkipped, AuditIncidentResolved, AuditEnded,
		AuditGatewaySlackRejected, AuditGatewayApprovalRefused, AuditGatewayApprovalSignalled,
		AuditGatewayEventUnmatched, AuditGatewayEventStarted, AuditGatewayEventDuplicate, AuditGatewayEventResolved, AuditGatewayEventRefused,
		AuditGatewayAgentRefused, AuditGatewayAgentStarted,
	}
}

// AuditRecord is one record: the CloudEvents 1.0 envelope with reins'
// extension attributes seq and prev. Field order is the encoding's order.
type AuditRecord struct {
	SpecVersion string `json:"specversion"`
	// ID is the record's hash; see the package comment above.
	ID string `json:"id"`
	// Source is "urn:reins:" and the Temporal namespace.
	Source string `json:"source"`
	Type   string `json:"type"`
	// Subject is the remediation (workflow) ID.
	Subject string `json:"subject"`
	// RunID is the remediation's Temporal run: one chain per run.
	RunID           string    `json:"runid"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// Seq is the record's place in its chain, from 1.
	Seq int64 `json:"seq"`
	// Prev is the ID of record Seq-1; empty on the first record.
	Prev string          `json:"prev,omitempty"`
	Data json.RawMessage `json:"data"`
}

// AuditSource is the source attribute of the records of a Temporal namespace.
func AuditSource(namespace string) string { return "urn:reins:" + namespace }

// NewAuditRecord builds record seq of subject's chain and returns its
// encoding, whose ID is set. data must be a JSON object (use AuditData).
// Everything it uses is an argument, so the same arguments give the same
// bytes: workflows call it.
func NewAuditRecord(source, subject, runID, typ string, seq int64, prev string, at time.Time, data json.RawMessage) ([]byte, AuditRecord, error) {
	rec := AuditRecord{
		SpecVersion:     AuditSpecVersion,
		Source:          source,
		Type:            typ,
		Subject:         subject,
		RunID:           runID,
		Time:            at.UTC(),
		DataContentType: AuditContentType,
		Seq:             seq,
		Prev:            prev,
		Data:            data,
	}
	if err := rec.checkEnvelope(); err != nil {
		return nil, rec, err
	}
	blank, err := json.Marshal(rec) //workflowcheck:ignore encoding/json of this struct (no maps) is deterministic
	if err != nil {
		return nil, rec, fmt.Errorf("encode audit record %s #%d: %w", typ, seq, err)
	}
	rec.ID = hashBlank(blank)
	out := make([]byte, 0, len(blank)+len(rec.ID))
	out = append(out, blank[:len(auditPrefix)]...)
	out = append(out, rec.ID...)
	out = append(out, blank[len(auditPrefix):]...)
	return out, rec, nil
}

// AuditData encodes a record's data. The data types here hold no maps, so
// the encoding is deterministic.
func AuditData(v any) (json.RawMessage, error) {
	data, err := json.Marshal(v) //workflowcheck:ignore encoding/json of the audit data structs (no maps) is deterministic
	if err != nil {
		return nil, fmt.Errorf("encode audit data: %w", err)
	}
	return data, nil
}

// auditPrefix is how every encoded record starts, up to the id's value.
const auditPrefix = `{"specversion":"1.0","id":"`

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

func hashBlank(blank []byte) string {
	sum := sha256.Sum256(blank)
	return hex.EncodeToString(sum[:])
}

// ErrAuditRecord marks a record that is not a well-formed, self-consistent
// reins audit record.
var ErrAuditRecord = errors.New("invalid audit record")

// ParseAuditRecord decodes an encoded record and checks it: the CloudEvents
// 1.0 envelope (required attributes present and well-formed, no attribute
// it does not know), and that its id is the hash of its bytes. It does not
// check the chain (seq and prev against other records); see package audit.
func ParseAuditRecord(data []byte) (AuditRecord, error) {
	var rec AuditRecord
	data = bytes.TrimRight(data, "\r\n")
	if !bytes.HasPrefix(data, []byte(auditPrefix)) || len(data) < len(auditPrefix)+64+1 {
		return rec, fmt.Errorf("%w: does not start with %s and a 64-hex-digit id", ErrAuditRecord, auditPrefix)
	}
	id := string(data[len(auditPrefix) : len(auditPrefix)+64])
	if !hexID.MatchString(id) || data[len(auditPrefix)+64] != '"' {
		return rec, fmt.Errorf("%w: id is not 64 lower-case hex digits", ErrAuditRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("%w: %v", ErrAuditRecord, err)
	}
	if dec.More() {
		return rec, fmt.Errorf("%w: data after the record", ErrAuditRecord)
	}
	if err := rec.checkEnvelope(); err != nil {
		return rec, err
	}
	blank := make([]byte, 0, len(data)-64)
	blank = append(blank, data[:len(auditPrefix)]...)
	blank = append(blank, data[len(auditPrefix)+64:]...)
	if got := hashBlank(blank); got != rec.ID {
		return rec, fmt.Errorf("%w: altered: its content hashes to %s, not to its id %s", ErrAuditRecord, got[:12], rec.ID[:12])
	}
	return rec, nil
}

// checkEnvelope checks the CloudEvents attributes and reins' extensions.
func (r AuditRecord) checkEnvelope() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrAuditRecord}, args...)...)
	}
	switch {
	case r.SpecVersion != AuditSpecVersion:
		return bad("specversion %q, want %q", r.SpecVersion, AuditSpecVersion)
	case r.Source == "" || strings.ContainsAny(r.Source, " \t\r\n"):
		return bad("source %q must be a non-empty URI reference", r.Source)
	case !strings.HasPrefix(r.Type, "reins."):
		return bad("type %q is not a reins type", r.Type)
	case r.Subject == "":
		return bad("subject (the remediation ID) is empty")
	case r.RunID == "" || strings.ContainsAny(r.RunID, " \t\r\n"):
		return bad("runid %q must be a non-empty run ID", r.RunID)
	case r.Time.IsZero():
		return bad("time is missing")
	case r.DataContentType != AuditContentType:
		return bad("datacontenttype %q, want %q", r.DataContentType, AuditContentType)
	case r.Seq < 1:
		return bad("seq %d must be 1 or more", r.Seq)
	case r.Seq == 1 && r.Prev != "":
		return bad("seq 1 has a prev")
	case r.Seq > 1 && !hexID.MatchString(r.Prev):
		return bad("seq %d: prev %q is not a record id", r.Seq, r.Prev)
	case len(r.Data) == 0 || r.Data[0] != '{':
		return bad("data must be a JSON object")
	}
	known := false
	for _, t := range AuditTypes() {
		known = known || t == r.Type
	}
	if !known {
		return bad("type %q is not a reins audit type", r.Type)
	}
	return nil
}

// Label names the record for humans: "#3 reins.policy.decided (id 1a2b3c4d5e6f)".
func (r AuditRecord) Label() string {
	id := r.ID
	if len(id) > 12 {
		id = id[:12]
	}
	return "#" + strconv.FormatInt(r.Seq, 10) + " " + r.Type + " (id " + id + ")"
}

// The data of each record type. They hold no maps (deterministic encoding)
// and no secrets: a credential appears only as its lease id.

// AuditStep names the step a record is about.
type AuditStep struct {
	Step        int    `json:"step"`
	Description string `json:"description"`
	Target      string `json:"target"`
	// Digest is the step digest approvals are bound to (empty for a rejected plan).
	Digest string `json:"digest,omitempty"`
}

// AuditStartedData is the data of AuditStarted: the triggering event, the
// requester, the plan and its reasoning.
type AuditStartedData struct {
	Incident    Incident  `json:"incident"`
	Requester   Requester `json:"requester"`
	Environment string    `json:"environment"`
	Explanation string    `json:"explanation"`
	DryRun      bool      `json:"dry_run,omitempty"`
	// PlanDigest is empty when the plan is invalid.
	PlanDigest string             `json:"plan_digest,omitempty"`
	Steps      []AuditPlannedStep `json:"steps"`
}

// AuditPlannedStep is one step of the plan as proposed.
type AuditPlannedStep struct {
	AuditStep
	Action        Action `json:"action"`
	Justification string `json:"justification"`
	Irreversible  bool   `json:"irreversible,omitempty"`
}

// AuditDecisionData is the data of AuditPolicyDecided.
type AuditDecisionData struct {
	AuditStep
	Decision Decision `json:"decision"`
}

// AuditApprovalRequestData is the data of AuditApprovalRequested and AuditApprovalExpired.
type AuditApprovalRequestData struct {
	AuditStep
	Approvers       int    `json:"approvers"`
	Group           string `json:"group"`
	EscalationGroup string `json:"escalation_group,omitempty"`
	EscalateAfter   string `json:"escalate_after"`
	Timeout         string `json:"timeout"`
	// Counted is how many approvals counted (AuditApprovalExpired).
	Counted int `json:"counted,omitempty"`
}

// AuditNotifyData is the data of AuditApprovalNotified.
type AuditNotifyData struct {
	AuditStep
	Group     string            `json:"group"`
	Escalated bool              `json:"escalated,omitempty"`
	Messages  []ApprovalMessage `json:"messages,omitempty"`
	// Note says why nothing was posted; Error why posting failed.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// AuditResolvedData is the data of AuditIncidentResolved.
type AuditResolvedData struct {
	Source      string `json:"source"`
	Fingerprint string `json:"fingerprint"`
	Trigger     string `json:"trigger,omitempty"`
	At          string `json:"at"`
}

// AuditApprovalData is the data of AuditApprovalGiven, AuditApprovalRejected
// and AuditApprovalRefused: who (as the gateway authenticated them, or as
// claimed when refused), through what, when they signed, and why.
type AuditApprovalData struct {
	AuditStep
	Approver Approver `json:"approver"`
	Group    string   `json:"group"`
	Verdict  Verdict  `json:"verdict"`
	Comment  string   `json:"comment,omitempty"`
	SignedAt string   `json:"signed_at,omitempty"`
	KeyID    string   `json:"key_id,omitempty"`
	Counted  bool     `json:"counted"`
	// Reason is why a refused approval does not count.
	Reason string `json:"reason,omitempty"`
	// Needed and Have count approvals toward the quorum after this one.
	Needed int `json:"needed"`
	Have   int `json:"have"`
}

// AuditCredentialData is the data of AuditCredentialIssued and AuditCredentialRevoked.
type AuditCredentialData struct {
	AuditStep
	// For is "action" or "compensation".
	For     string `json:"for"`
	LeaseID string `json:"lease_id"`
	// Role and Namespace say what the credential could do: the Vault role it
	// was minted from and the namespace it was scoped to.
	Role      string `json:"role,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// AuditActionData is the data of AuditActionApplied and AuditActionFailed.
type AuditActionData struct {
	AuditStep
	Action Action `json:"action"`
	// Change is one line: what was set, from what to what.
	Change  string      `json:"change"`
	Before  *StateBrief `json:"before,omitempty"`
	After   *StateBrief `json:"after,omitempty"`
	Changed bool        `json:"changed"`
	DryRun  bool        `json:"dry_run,omitempty"`
	Error   string      `json:"error,omitempty"`
	// Approvers are who co-signed the step.
	Approvers []string `json:"approvers,omitempty"`
}

// AuditVerificationData is the data of AuditVerificationPassed and AuditVerificationFailed.
type AuditVerificationData struct {
	AuditStep
	Observed string `json:"observed,omitempty"`
	Error    string `json:"error,omitempty"`
}

// AuditCompensationData is the data of the compensation records.
type AuditCompensationData struct {
	AuditStep
	// Undo says what the compensation does.
	Undo    string `json:"undo"`
	Changed bool   `json:"changed"`
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
}

// AuditEndedData is the data of AuditEnded.
type AuditEndedData struct {
	State  State            `json:"state"`
	Reason string           `json:"reason,omitempty"`
	Steps  []AuditStepState `json:"steps"`
}

// AuditStepState is one step's final state.
type AuditStepState struct {
	Step  int       `json:"step"`
	State StepState `json:"state"`
}

// StateBrief is the part of a Snapshot an audit record shows: no labels, no
// image history.
type StateBrief struct {
	Exists        bool             `json:"exists"`
	UID           string           `json:"uid,omitempty"`
	Replicas      *int32           `json:"replicas,omitempty"`
	Images        []ContainerImage `json:"images,omitempty"`
	RestartedAt   string           `json:"restarted_at,omitempty"`
	Unschedulable *bool            `json:"unschedulable,omitempty"`
	Quarantined   bool             `json:"quarantined,omitempty"`
	Phase         string           `json:"phase,omitempty"`
}

// Brief returns the audit view of s.
func (s Snapshot) Brief() *StateBrief {
	return &StateBrief{
		Exists:        s.Exists,
		UID:           s.UID,
		Replicas:      s.Replicas,
		Images:        s.Images,
		RestartedAt:   s.RestartedAt,
		Unschedulable: s.Unschedulable,
		Quarantined:   s.Quarantine != "" || s.QuarantinePolicy,
		Phase:         s.Phase,
	}
}

// DescribeChange is one line saying what step does to a target in state
// before, e.g. "scale shop/deployment/checkout 3→6".
func DescribeChange(s Step, before Snapshot) string {
	t := s.Target.String()
	switch s.Action {
	case ActionScale:
		if s.Params.Replicas != nil {
			from := "?"
			if before.Replicas != nil {
				from = strconv.Itoa(int(*before.Replicas))
			}
			return "scale " + t + " " + from + "→" + strconv.Itoa(int(*s.Params.Replicas))
		}
	case ActionSetImage:
		from, ok := before.Image(s.Params.Container)
		if !ok {
			from = "(no container " + s.Params.Container + ")"
		}
		return "set image of " + t + " container " + s.Params.Container + " " + from + "→" + s.Params.Image
	case ActionRolloutRestart:
		return "restart " + t
	case ActionCordon:
		return "cordon " + t + " " + schedulable(before) + "→unschedulable"
	case ActionUncordon:
		return "uncordon " + t + " " + schedulable(before) + "→schedulable"
	case ActionQuarantinePod:
		return "quarantine " + t
	case ActionDeletePod:
		return "delete " + t + " (irreversible)"
	}
	return s.Describe()
}

func schedulable(s Snapshot) string {
	if s.Unschedulable != nil && *s.Unschedulable {
		return "unschedulable"
	}
	return "schedulable"
}
