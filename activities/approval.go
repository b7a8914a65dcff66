package activities

import (
	"context"
	"crypto/ed25519"

	"github.com/reins-dev/reins/remediation"
)

// Approvals checks co-signatures for the workflow: the gateway's signature
// against the trusted keys, then the step's ApprovalRule.
type Approvals struct {
	// Keys are the trusted gateway public keys by key ID. Empty: no approval
	// can count, so every co-signed step times out as denied.
	Keys map[string]ed25519.PublicKey
}

// Check is run as a local activity; its result is recorded in history.
func (a *Approvals) Check(_ context.Context, in remediation.CheckApprovalInput) (remediation.CheckApprovalResult, error) {
	if err := in.Approval.Verify(a.Keys); err != nil {
		return remediation.CheckApprovalResult{Reason: err.Error()}, nil
	}
	if reason := in.Rule.Check(in.Approval); reason != "" {
		return remediation.CheckApprovalResult{Reason: reason}, nil
	}
	return remediation.CheckApprovalResult{Accepted: true}, nil
}
