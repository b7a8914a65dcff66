// Package remediation holds reins' domain types: the Plan an agent or incident
// tool proposes, its Steps, the policy Decision for a step, the Snapshot of a
// target captured before it is changed, and the State of a remediation.
//
// The package is pure: it imports only the standard library, so that plans can
// be decoded, validated and digested anywhere (CLI, gateway, workflow) with the
// same rules. Decode rejects unknown fields and oversize input; Validate names
// every bad field and says what is expected; Digest and StepDigest give the
// canonical SHA-256 an approval is bound to.
package remediation
