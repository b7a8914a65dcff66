package remediation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// Digests are SHA-256 over the canonical JSON of the typed value: encoding/json
// of these structs has a fixed field order and no maps, so the same plan gives
// the same digest whatever the key order or spacing of the JSON it came from.
// A domain prefix keeps plan and step digests from ever colliding.

// Digest is the plan's canonical SHA-256, in hex.
func (p Plan) Digest() string {
	return digest("reins.plan.v1", p)
}

// StepDigest is the canonical SHA-256 of step i bound to this plan, in hex. An
// approval carries it, so that it cannot be applied to any other step or plan.
func (p Plan) StepDigest(i int) string {
	return digest("reins.step.v1", struct {
		Plan  string `json:"plan"`
		Index int    `json:"index"`
		Step  Step   `json:"step"`
	}{p.Digest(), i, p.Steps[i]})
}

func digest(domain string, v any) string {
	// The digested types hold only strings, integers and bools, for which
	// Marshal cannot fail.
	data, _ := json.Marshal(v) //workflowcheck:ignore encoding/json of these structs is deterministic
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// WorkflowID is the remediation's workflow ID: the plan's ID if it has one,
// else one derived from the incident, so that duplicates of an incident join
// the remediation already running for it.
func (p Plan) WorkflowID() string {
	if p.ID != "" {
		return p.ID
	}
	return "reins-" + idPart(p.Incident.Source) + "-" + idPart(p.Incident.Fingerprint)
}

func idPart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}
