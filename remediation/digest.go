package remediation

import (
	"crypto/sha256"
	"encoding/binary"
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

// Remediation (workflow) IDs. An ID is readable, so that the Temporal UI
// and the audit trail show what a remediation answers, and unambiguous: its
// readable parts keep only letters, digits and . _ - (any other character
// becomes '_') and are cut to a bounded length, so an ID also ends in a
// hash of the exact values it is derived from: two incidents that read
// alike never share an ID.
//
// There are three spaces of IDs, which never meet:
//   - reins-<source>-<fingerprint>-<hash>: derived from the incident by
//     WorkflowID; the intake's remediations (source: the trigger's name).
//   - <kind>:<client>:<source>-<fingerprint>-<hash>: derived by
//     ClientWorkflowID for a plan an authenticated client (an agent, or a
//     human through `reins start`) proposed through the gateway; the hash
//     covers the client too, so two proposals of one client for one
//     incident join, and no client takes another's ID or the intake's.
//   - any other ID a plan sets (Plan.ID); the gateway refuses one in the
//     spaces above (IsDerivedWorkflowID).
const (
	// IncidentIDPrefix begins every ID WorkflowID derives.
	IncidentIDPrefix = "reins-"
	// MaxDerivedIDBytes bounds every ID WorkflowID and ClientWorkflowID
	// derive: what Validate allows in Plan.ID, well within Temporal's limit.
	MaxDerivedIDBytes = 200
	// idHashHex is the length of an ID's hash: 64 bits of SHA-256, in hex.
	idHashHex = 16
	// Bounds of an ID's readable parts.
	maxIDSourceBytes      = 63
	maxIDFingerprintBytes = 64
	maxIDClientBytes      = 100
)

// WorkflowID is the remediation's workflow ID: the plan's ID if it has one,
// else reins-<source>-<fingerprint>-<hash> derived from the incident, so that
// duplicates of an incident join the remediation already running for it.
// <source> and <fingerprint> are the readable parts (at most 63 and 64
// bytes); <hash> is 16 hex digits of the SHA-256 of the exact pair.
func (p Plan) WorkflowID() string {
	if p.ID != "" {
		return p.ID
	}
	h := idHash("reins.workflow-id.v1", p.Incident.Source, p.Incident.Fingerprint)
	return IncidentIDPrefix + idParts(MaxDerivedIDBytes-len(IncidentIDPrefix)-1-len(h), p.Incident) + "-" + h
}

// ClientWorkflowID is the workflow ID of a plan that the client named by its
// requester ({kind, name}, set by the door from the authenticated identity)
// proposed (Requester.Kind agent or human): the plan's ID if it has one, else
// <kind>:<client>:<source>-<fingerprint>-<hash>, where <hash> covers the
// exact kind, name, source and fingerprint. Such an ID is never one that
// WorkflowID derives (it holds ':'), nor another client's.
func (p Plan) ClientWorkflowID() string {
	if p.ID != "" {
		return p.ID
	}
	r := p.Requester
	name := idPart(r.Name)
	name = name[:min(len(name), maxIDClientBytes)]
	prefix := idPart(r.Kind) + ":" + name + ":"
	h := idHash("reins.client-workflow-id.v1", r.Kind, r.Name, p.Incident.Source, p.Incident.Fingerprint)
	return prefix + idParts(MaxDerivedIDBytes-len(prefix)-1-len(h), p.Incident) + "-" + h
}

// IsDerivedWorkflowID reports whether id is in a space that reins derives
// IDs in (it begins with "reins-", "agent:" or "human:"): a plan proposed
// through the gateway may not set it, or it could take the ID of the
// intake's or another client's remediation before it starts.
func IsDerivedWorkflowID(id string) bool {
	return strings.HasPrefix(id, IncidentIDPrefix) ||
		strings.HasPrefix(id, RequesterAgent+":") || strings.HasPrefix(id, RequesterHuman+":")
}

// idParts is the readable <source>-<fingerprint> of an ID, in at most room
// bytes: each part is cut to its own bound, then the longer one further.
func idParts(room int, inc Incident) string {
	src, fp := idPart(inc.Source), idPart(inc.Fingerprint)
	src, fp = src[:min(len(src), maxIDSourceBytes)], fp[:min(len(fp), maxIDFingerprintBytes)]
	if over := len(src) + 1 + len(fp) - room; over > 0 {
		// Cut the longer part down to the shorter one, then both evenly.
		long, short := &src, &fp
		if len(fp) > len(src) {
			long, short = &fp, &src
		}
		cut := min(over, len(*long)-len(*short))
		*long = (*long)[:len(*long)-cut]
		if over -= cut; over > 0 {
			*long = (*long)[:len(*long)-(over+1)/2]
			*short = (*short)[:len(*short)-over/2]
		}
	}
	return src + "-" + fp
}

// idPart keeps the letters, digits and . _ - of s; any other character
// becomes '_'.
func idPart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}

// idHash is the first 16 hex digits of the SHA-256 of domain and values,
// each value preceded by its length, so that no two lists of values hash
// alike by moving bytes from one value to the next.
func idHash(domain string, values ...string) string {
	h := sha256.New()
	h.Write([]byte(domain))
	var n [8]byte
	for _, v := range values {
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil))[:idHashHex]
}
