package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// The approval desk is where every human decision on a step enters reins,
// whatever the door (a Slack button, `reins approve`): it checks the vote
// against the remediation's current status, refuses early with a sentence
// the human understands, and otherwise signs the approval with the gateway's
// key and signals it. The workflow checks every approval again and is the
// authority: the desk only spares humans a silent refusal in history.

// Limits on a vote.
const (
	// MaxCommentChars bounds a vote's comment (in characters).
	MaxCommentChars = 1000
	// MaxRemediationIDBytes is Temporal's default limit on a workflow ID.
	MaxRemediationIDBytes = 1000
)

// stepDigestRE is the form of a step digest: SHA-256 in lower-case hex.
var stepDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// DeskRemediations is what the desk needs of Temporal: a remediation's status,
// and the approval signal.
type DeskRemediations interface {
	// Status returns remediation id's status, or an error wrapping
	// ErrRemediationNotFound when there is no such workflow.
	Status(ctx context.Context, id string) (workflows.Status, error)
	// Approve signals a to remediation a.Remediation, or returns an error
	// wrapping ErrRemediationNotFound when it is not running.
	Approve(ctx context.Context, a remediation.Approval) error
}

// TemporalDeskRemediations is DeskRemediations on a Temporal client.
func TemporalDeskRemediations(c sdkclient.Client) DeskRemediations {
	return temporalDeskRemediations{c}
}

type temporalDeskRemediations struct{ c sdkclient.Client }

var _ DeskRemediations = temporalDeskRemediations{}

func (t temporalDeskRemediations) Status(ctx context.Context, id string) (workflows.Status, error) {
	st, err := workflows.GetStatus(ctx, t.c, id)
	return st, deskNotFound(err)
}

func (t temporalDeskRemediations) Approve(ctx context.Context, a remediation.Approval) error {
	return deskNotFound(workflows.Approve(ctx, t.c, a))
}

// deskNotFound marks Temporal's NotFound (no such workflow, or a closed one that
// cannot take a signal) as ErrRemediationNotFound.
func deskNotFound(err error) error {
	if temporalNotFound(err) {
		return fmt.Errorf("%w: %w", ErrRemediationNotFound, err)
	}
	return err
}

// Signer is the gateway's approval-signing key. The workers trust its public
// key under KeyID (approvals.trusted_keys).
type Signer struct {
	// KeyID names the key, e.g. "gateway" (approvals.signing_key_id).
	KeyID string
	// Key is the Ed25519 private key (approvals.signing_key_file). A secret.
	Key ed25519.PrivateKey `json:"-"`
}

// DeskOptions configures NewDesk. Remediations, Signer and Recorder are
// required; the others have defaults.
type DeskOptions struct {
	// Remediations reads statuses and signals approvals
	// (TemporalDeskRemediations(client) in production).
	Remediations DeskRemediations
	// Signer signs every approval the desk signals.
	Signer Signer
	// Recorder records every refusal and every signalled approval.
	Recorder *Recorder
	// Now is the clock approvals are dated with. Default time.Now.
	Now func() time.Time
	// Logger receives one line per vote. Default slog.Default().
	Logger *slog.Logger
}

// Desk decides what becomes of a human's vote on a step. Safe for
// concurrent use.
type Desk struct {
	rems   DeskRemediations
	signer Signer
	rec    *Recorder
	now    func() time.Time
	log    *slog.Logger
}

// NewDesk builds the desk.
func NewDesk(opts DeskOptions) (*Desk, error) {
	var errs []error
	if opts.Remediations == nil {
		errs = append(errs, errors.New("approval desk: no Temporal client to read statuses and send approvals"))
	}
	if opts.Signer.KeyID == "" {
		errs = append(errs, errors.New("approval desk: the signing key has no ID (approvals.signing_key_id, e.g. \"gateway\")"))
	}
	if len(opts.Signer.Key) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("approval desk: the signing key must be a %d-byte Ed25519 private key (approvals.signing_key_file; see `reins keygen`)", ed25519.PrivateKeySize))
	}
	if opts.Recorder == nil {
		errs = append(errs, errors.New("approval desk: no audit recorder: every refusal and approval is recorded (configure an audit sink)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Desk{rems: opts.Remediations, signer: opts.Signer, rec: opts.Recorder, now: opts.Now, log: opts.Logger}, nil
}

// Vote is one human's decision on one step, as a door authenticated it.
type Vote struct {
	// Remediation is the workflow ID.
	Remediation string
	// Step is the step's index.
	Step int
	// Digest is the step digest the message or CLI showed ("" = the current one).
	Digest string
	// Run is the workflow run whose message was clicked ("" = the current
	// one): a click on a message of an earlier run of the remediation (same
	// plan, so the same digest) is refused.
	Run string
	// Approver is the authenticated identity; its Source names the door
	// ("slack" or "cli").
	Approver remediation.Approver
	// InGroup reports whether the approver belongs to an approver group.
	InGroup func(ctx context.Context, group string) (bool, error)
	// Verdict is approve or deny.
	Verdict remediation.Verdict
	// Comment is recorded with the decision (at most MaxCommentChars).
	Comment string
}

// RefusalKind classifies a refusal, for the status code of an API answer.
type RefusalKind string

// Refusal kinds.
const (
	// RefusedInvalid: the vote itself is malformed (bad verdict, comment too long...).
	RefusedInvalid RefusalKind = "invalid"
	// RefusedUnknown: there is no such remediation.
	RefusedUnknown RefusalKind = "unknown-remediation"
	// RefusedNotAwaiting: no such step, the remediation ended, or the step is
	// not waiting for co-signature (already decided or not yet asked).
	RefusedNotAwaiting RefusalKind = "not-awaiting"
	// RefusedStale: the step is not the version the human was shown.
	RefusedStale RefusalKind = "stale"
	// RefusedRequester: the approver is the requester or the requesting agent's owner.
	RefusedRequester RefusalKind = "requester"
	// RefusedCounted: the approver is already counted for the step.
	RefusedCounted RefusalKind = "already-counted"
	// RefusedNotInGroup: the approver is in none of the groups that may co-sign.
	RefusedNotInGroup RefusalKind = "not-in-group"
	// RefusedNotApprover: the Slack user can approve nothing: deactivated,
	// a bot or an app, unknown to Slack, or without an e-mail address.
	RefusedNotApprover RefusalKind = "not-an-approver"
)

// DeskResult is what became of a vote.
type DeskResult struct {
	// Signalled: the signed approval was signalled to the workflow.
	Signalled bool
	// Refusal says why not: one sentence for the human.
	Refusal string
	// Kind classifies the refusal ("" when signalled).
	Kind RefusalKind
	// Group is the group the approver was counted in.
	Group string
}

// DeskAuditData is the data of the gateway's AuditApprovalRefused and
// AuditApprovalSignalled records.
type DeskAuditData struct {
	Remediation string `json:"remediation"`
	// Run is the workflow run a signalled approval was signed for.
	Run        string               `json:"run,omitempty"`
	Step       int                  `json:"step"`
	StepDigest string               `json:"step_digest,omitempty"`
	Approver   remediation.Approver `json:"approver"`
	Verdict    remediation.Verdict  `json:"verdict"`
	Group      string               `json:"group,omitempty"`
	Comment    string               `json:"comment,omitempty"`
	// KeyID and SignedAt are set on a signalled approval.
	KeyID    string `json:"key_id,omitempty"`
	SignedAt string `json:"signed_at,omitempty"`
	// Kind and Reason say why a vote was refused.
	Kind   RefusalKind `json:"kind,omitempty"`
	Reason string      `json:"reason,omitempty"`
}

// Decide checks v against the remediation's current status and signals the
// signed approval, or refuses it (DeskResult.Refusal). Every outcome is
// recorded. The error is only for failures to reach Temporal, to check a
// group, or a door that sent no approver: the human should try again later.
func (d *Desk) Decide(ctx context.Context, v Vote) (DeskResult, error) {
	if v.Approver.ID == "" || v.InGroup == nil {
		return DeskResult{}, errors.New("approval desk: the vote carries no authenticated approver or group check")
	}
	if p := v.problems(); len(p) > 0 {
		return d.refuse(ctx, v, "", RefusedInvalid, p[0].Field+": "+p[0].Detail), nil
	}
	st, err := d.rems.Status(ctx, v.Remediation)
	if errors.Is(err, ErrRemediationNotFound) {
		return d.refuse(ctx, v, "", RefusedUnknown, fmt.Sprintf("there is no remediation %q", v.Remediation)), nil
	}
	if err != nil {
		return DeskResult{}, fmt.Errorf("approval desk: %w", err)
	}
	if st.State != remediation.StateRunning {
		return d.refuse(ctx, v, "", RefusedNotAwaiting, fmt.Sprintf("remediation %s has ended (%s): there is nothing left to decide", st.ID, st.State)), nil
	}
	if v.Step >= len(st.Steps) {
		return d.refuse(ctx, v, "", RefusedNotAwaiting, fmt.Sprintf("remediation %s has no step %d (its steps are 0 to %d)", st.ID, v.Step, len(st.Steps)-1)), nil
	}
	s := st.Steps[v.Step]
	if s.State != remediation.StepAwaitingApproval || s.Decision == nil {
		why := fmt.Sprintf("step %d (%s) was already decided: it is %s", v.Step, s.Description, s.State)
		if s.State == remediation.StepPending || s.State == remediation.StepEvaluating {
			why = fmt.Sprintf("step %d (%s) has not asked for co-signature: it is %s", v.Step, s.Description, s.State)
		}
		return d.refuse(ctx, v, "", RefusedNotAwaiting, why), nil
	}
	if v.Run != "" && v.Run != st.RunID {
		return d.refuse(ctx, v, "", RefusedStale, fmt.Sprintf("this message is from an earlier run of remediation %s: look at the current request before deciding", st.ID)), nil
	}
	if v.Digest != "" && v.Digest != s.Digest {
		return d.refuse(ctx, v, "", RefusedStale, fmt.Sprintf("step %d is not the version you were shown (digest %s… shown, %s… now): look at it again before deciding",
			v.Step, shortDigest(v.Digest), shortDigest(s.Digest))), nil
	}
	who, req := v.Approver.ID, st.RequestedBy
	switch {
	case remediation.SameIdentity(who, req.Name):
		return d.refuse(ctx, v, "", RefusedRequester, fmt.Sprintf("%s requested remediation %s and cannot co-sign its steps", who, st.ID)), nil
	case remediation.SameIdentity(who, req.Owner):
		return d.refuse(ctx, v, "", RefusedRequester, fmt.Sprintf("%s owns the requesting agent %s and cannot co-sign its steps", who, req.Name)), nil
	}
	if slices.ContainsFunc(s.Approvals, func(a workflows.ApprovalRecord) bool {
		return a.Counted && remediation.SameIdentity(a.Approver.ID, who)
	}) {
		return d.refuse(ctx, v, "", RefusedCounted, fmt.Sprintf("%s is already counted for step %d; another approver is needed", who, v.Step)), nil
	}
	group, err := d.group(ctx, v, s)
	if err != nil {
		return DeskResult{}, err
	}
	if group == "" {
		why := fmt.Sprintf("%s is not in group %q, which must co-sign step %d", who, s.Decision.Group, v.Step)
		if s.Escalated && s.Decision.EscalationGroup != "" {
			why = fmt.Sprintf("%s is in neither group %q nor its escalation group %q, which must co-sign step %d", who, s.Decision.Group, s.Decision.EscalationGroup, v.Step)
		}
		return d.refuse(ctx, v, "", RefusedNotInGroup, why), nil
	}

	a := remediation.Approval{
		Remediation: st.ID,
		Run:         st.RunID,
		StepDigest:  s.Digest,
		Approver:    v.Approver,
		Group:       group,
		Verdict:     v.Verdict,
		Comment:     v.Comment,
		At:          d.now().UTC(),
	}.Sign(d.signer.KeyID, d.signer.Key)
	if err := d.rems.Approve(ctx, a); err != nil {
		if errors.Is(err, ErrRemediationNotFound) {
			return d.refuse(ctx, v, group, RefusedNotAwaiting, fmt.Sprintf("remediation %s ended before your decision reached it", st.ID)), nil
		}
		return DeskResult{}, fmt.Errorf("approval desk: %w", err)
	}
	d.log.Info("approval signalled", "remediation", st.ID, "step", v.Step, "approver", who, "source", v.Approver.Source, "group", group, "verdict", v.Verdict)
	d.record(ctx, AuditApprovalSignalled, DeskAuditData{
		Remediation: st.ID, Run: a.Run, Step: v.Step, StepDigest: s.Digest, Approver: v.Approver, Verdict: v.Verdict, Group: group,
		Comment: v.Comment, KeyID: a.KeyID, SignedAt: a.At.Format(time.RFC3339Nano),
	})
	return DeskResult{Signalled: true, Group: group}, nil
}

// group is the group v's approver may co-sign step s in: its group, else,
// once escalated, its escalation group; "" when neither.
func (d *Desk) group(ctx context.Context, v Vote, s workflows.StepStatus) (string, error) {
	groups := []string{s.Decision.Group}
	if s.Escalated && s.Decision.EscalationGroup != "" {
		groups = append(groups, s.Decision.EscalationGroup)
	}
	for _, g := range groups {
		if g == "" {
			continue
		}
		in, err := v.InGroup(ctx, g)
		if err != nil {
			return "", fmt.Errorf("approval desk: is %s in group %s: %w", v.Approver.ID, g, err)
		}
		if in {
			return g, nil
		}
	}
	return "", nil
}

// refuse records and returns a refusal.
func (d *Desk) refuse(ctx context.Context, v Vote, group string, kind RefusalKind, why string) DeskResult {
	d.log.Info("approval refused", "remediation", v.Remediation, "step", v.Step, "approver", v.Approver.ID, "source", v.Approver.Source, "kind", kind, "reason", why)
	d.record(ctx, AuditApprovalRefused, DeskAuditData{
		Remediation: v.Remediation, Step: v.Step, StepDigest: v.Digest, Approver: v.Approver, Verdict: v.Verdict, Group: group,
		Comment: v.Comment, Kind: kind, Reason: why,
	})
	return DeskResult{Refusal: why, Kind: kind}
}

// record writes an audit record. A record that no sink stored does not
// change the answer: the human's decision stands (the workflow records it
// too) and the recorder logged the failure.
func (d *Desk) record(ctx context.Context, typ string, data DeskAuditData) {
	// A refused vote may be malformed: its fields are recorded cut to their limits.
	data.Remediation, data.StepDigest = clip(data.Remediation, MaxRemediationIDBytes), clip(data.StepDigest, 64)
	data.Comment = clip(data.Comment, MaxCommentChars)
	_ = d.rec.Record(context.WithoutCancel(ctx), typ, data)
}

// problems names each malformed field of v, by the JSON names of the
// approvals API.
func (v Vote) problems() []FieldProblem {
	var out []FieldProblem
	bad := func(field, detail string) { out = append(out, FieldProblem{Field: field, Detail: detail}) }
	if v.Remediation == "" || len(v.Remediation) > MaxRemediationIDBytes {
		bad("remediation", fmt.Sprintf("must be a workflow ID of 1 to %d bytes", MaxRemediationIDBytes))
	}
	if v.Step < 0 {
		bad("step", fmt.Sprintf("must be a step index, 0 or more (reins status shows them), got %d", v.Step))
	}
	if v.Verdict != remediation.VerdictApprove && v.Verdict != remediation.VerdictDeny {
		bad("verdict", fmt.Sprintf("must be %q or %q, got %q", remediation.VerdictApprove, remediation.VerdictDeny, v.Verdict))
	}
	if !utf8.ValidString(v.Comment) || utf8.RuneCountInString(v.Comment) > MaxCommentChars {
		bad("comment", fmt.Sprintf("must be UTF-8 text of at most %d characters", MaxCommentChars))
	}
	if v.Digest != "" && !stepDigestRE.MatchString(v.Digest) {
		bad("digest", "must be a step digest (64 lower-case hex digits, as reins status shows it), or left out for the current one")
	}
	return out
}

func shortDigest(digest string) string { return clip(digest, 12) }

// clip cuts s to at most n characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
