package remediation

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Verdict is what an approver decided.
type Verdict string

// Verdicts.
const (
	VerdictApprove Verdict = "approve"
	VerdictDeny    Verdict = "deny"
)

// Approver is an authenticated human.
type Approver struct {
	// ID is the stable identity (e.g. the Slack user's e-mail or the CLI user).
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Source is the door it came through: "slack" or "cli".
	Source string `json:"source"`
}

// Approval is a co-signature of one step, signed by the gateway that
// authenticated the approver and checked their group. It is the payload of
// the workflow's approval signal.
type Approval struct {
	Remediation string `json:"remediation"`
	// Run is the run of the remediation workflow the approver was shown:
	// a workflow ID is reused when an incident fires again, and its plan,
	// and so its step digests, may be the same; the run is not.
	Run        string   `json:"run,omitempty"`
	StepDigest string   `json:"step_digest"`
	Approver   Approver `json:"approver"`
	// Group is the approver group whose membership the gateway verified.
	Group   string    `json:"group"`
	Verdict Verdict   `json:"verdict"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
	// KeyID names the gateway key that signed.
	KeyID string `json:"key_id"`
	// Signature is Ed25519 over SigningPayload.
	Signature []byte `json:"signature"`
}

// SigningPayload is what the signature covers: every field but Signature.
func (a Approval) SigningPayload() []byte {
	a.Signature = nil
	a.At = a.At.UTC()
	// Approval holds only strings and a time: Marshal cannot fail on it.
	data, _ := json.Marshal(a)
	return append([]byte("reins.approval.v1\x00"), data...)
}

// Sign returns a signed with key (named keyID).
func (a Approval) Sign(keyID string, key ed25519.PrivateKey) Approval {
	a.KeyID = keyID
	a.Signature = ed25519.Sign(key, a.SigningPayload())
	return a
}

// ErrBadSignature: the approval is unsigned, signed by an unknown key, or altered.
var ErrBadSignature = errors.New("approval signature does not verify")

// Verify checks the signature against the trusted gateway keys.
func (a Approval) Verify(keys map[string]ed25519.PublicKey) error {
	key, ok := keys[a.KeyID]
	if !ok || len(a.Signature) == 0 {
		return fmt.Errorf("%w: unsigned or signed by unknown key %q", ErrBadSignature, a.KeyID)
	}
	if !ed25519.Verify(key, a.SigningPayload(), a.Signature) {
		return fmt.Errorf("%w: signed by key %q but altered or forged", ErrBadSignature, a.KeyID)
	}
	return nil
}

// ApprovalRule is what an approval must match to count for a step.
type ApprovalRule struct {
	Remediation string `json:"remediation"`
	// Run is the workflow run deciding; an approval signed for another run
	// of the same remediation does not count.
	Run        string    `json:"run,omitempty"`
	StepDigest string    `json:"step_digest"`
	Requester  Requester `json:"requester"`
	// Groups may approve (the policy's group, and its escalation group once escalated).
	Groups []string `json:"groups"`
	// Counted are the approver IDs already counted for this step.
	Counted []string `json:"counted"`
}

// Check returns "" when a (already signature-verified) counts under the
// rule, or the reason it does not.
func (r ApprovalRule) Check(a Approval) string {
	switch {
	case a.Remediation != r.Remediation:
		return fmt.Sprintf("approval is for remediation %q, not this one", a.Remediation)
	case a.Run != r.Run:
		return fmt.Sprintf("approval is for run %q of this remediation, not this run", a.Run)
	case a.StepDigest != r.StepDigest:
		return "approval is for another step (digest " + short(a.StepDigest) + ", current step " + short(r.StepDigest) + ")"
	case a.Verdict != VerdictApprove && a.Verdict != VerdictDeny:
		return fmt.Sprintf("verdict %q is neither approve nor deny", a.Verdict)
	case a.Approver.ID == "":
		return "approver has no identity"
	case SameIdentity(a.Approver.ID, r.Requester.Name):
		return "the requester " + a.Approver.ID + " cannot co-sign their own step"
	case SameIdentity(a.Approver.ID, r.Requester.Owner):
		return a.Approver.ID + " owns the requesting agent " + r.Requester.Name + " and cannot co-sign its step"
	case !slices.Contains(r.Groups, a.Group) || a.Group == "":
		return fmt.Sprintf("approver group %q may not co-sign this step (allowed: %v)", a.Group, r.Groups)
	case slices.ContainsFunc(r.Counted, func(id string) bool { return SameIdentity(id, a.Approver.ID) }):
		return a.Approver.ID + " is already counted for this step; a second approver is needed"
	}
	return ""
}

// SameIdentity reports whether two identities (e-mail addresses, client
// names, Slack user IDs) name the same person. They compare without regard to
// case: Slack reports e-mail addresses in lower case while a config or a
// plan may name the same person Dana@Example.com, and the requester and
// owner exclusions and the two-person rule must see through that. An empty
// identity names nobody.
func SameIdentity(a, b string) bool {
	return a != "" && strings.EqualFold(a, b)
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
