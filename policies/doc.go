// Package policies decides, step by step, whether reins may act: policy as
// code in Rego, evaluated with OPA (github.com/open-policy-agent/opa/v1),
// deny by default.
//
// The package holds the default policy bundle (the *.rego files, their
// *_test.rego unit tests and data.json in this folder, embedded in the binary)
// and the Engine that evaluates a bundle. The EvaluatePolicy activity calls
// Engine.Decide; workflow code never evaluates policy, because a bundle may
// change while a workflow waits.
//
// # Bundles
//
// A bundle is a folder's *.rego files (tests included) and its data.json,
// which must hold one JSON object; sub-folders and hidden files are not part
// of it (so a testdata folder beside a bundle never loads, and a Kubernetes
// ConfigMap volume, whose files are symlinks into a hidden folder, works).
// Rego is version 1 (OPA 1.x syntax). data.json is the root of the data
// document: its "reins" key is data.reins.
//
// A bundle must define the rule data.reins.policy.decision (Entrypoint). It
// may define data.reins.policy.config_problems (ConfigProblems), a set of
// sentences about its own data; the engine evaluates it once when it loads
// the bundle and refuses the bundle if it is not empty.
//
// Built-ins that reach the network (http.send, net.lookup_ip_addr) and
// opa.runtime are not available to a bundle. A built-in that fails (a bad time
// string, a division by zero) fails the evaluation, and so denies, instead of
// silently leaving a rule undefined.
//
// The bundle's digest, carried by every decision (Decision.Bundle), is the
// SHA-256, in hex, of
//
//	"reins.policy.bundle.v1" 0x00
//	for each file, in ascending byte order of its name (without its folder):
//	    name 0x00, the content's length as a big-endian uint64, the content
//
// over the bundle's *.rego files (tests included) and data.json. The same
// files give the same digest wherever they are: the embedded default bundle
// and a copy written out with WriteDefaultBundle have the same digest.
//
// # Loading and reloading
//
// New compiles the bundle once (ast.Compiler, then rego.PrepareForEval); every
// decision reuses the prepared query. Options.Dir names the operator's bundle
// folder; "" selects the embedded default bundle. Watch polls the folder every
// Options.PollInterval (1s by default), comparing the digest of its files with
// the last one tried; Reload does the same once, on demand. A bundle that
// compiles is in force for the decisions that start after it; one that does
// not is refused, its problems logged and returned with file:line (a
// *BundleError), and the last good bundle stays in force. With no good bundle
// at all (the first load failed), every decision is deny.
//
// # Decisions
//
// Decide never fails: it returns a remediation.Decision. When the policy
// cannot decide, the decision is deny with risk critical, and its first
// reason starts with one of the Reason constants saying why: no good bundle
// (ReasonNoBundle), an action reins does not know (ReasonUnknownAction,
// whatever the bundle says), the caller's context ended (ReasonCancelled), the
// evaluation took longer than Options.EvalTimeout, 100ms by default
// (ReasonTimeout), the evaluation failed (ReasonEvalError), the decision is
// undefined for the input (ReasonUndefined), or the decision is malformed
// (ReasonMalformed: an effect other than allow, cosign or deny, a risk other
// than low, medium, high or critical, reasons that are not strings, a cosign
// without approvers >= 1 or without a group, negative escalation times).
//
// The decision rule's value is an object:
//
//	{
//	  "effect": "allow" | "cosign" | "deny",
//	  "risk": "low" | "medium" | "high" | "critical",
//	  "reasons": ["human sentence", ...],
//	  // cosign only:
//	  "approvers": n,             // distinct humans, >= 1
//	  "group": "oncall-sre",      // who may approve
//	  "escalation_group": "sre-leads",  // optional
//	  "escalate_after_seconds": 900,    // optional
//	  "timeout_seconds": 3600           // optional
//	}
//
// # Input
//
// The document input is Input in its JSON form (Decide builds the same value
// without a JSON round trip):
//
//	{
//	  "plan": {remediation.Plan},
//	  "step": {"action": "kubernetes.scale",
//	           "target": {"cluster"?, "namespace"?, "kind", "name"},
//	           "params": {"replicas"?, "container"?, "image"?},
//	           "justification": "..."},
//	  "index": 0,                            // the step's index in plan.steps
//	  "requester": {"kind"?: "agent" | "human", "name"?: "sre-agent", "owner"?: "alice"},
//	  "environment": "production",
//	  "now": "2026-06-01T12:00:00Z",         // RFC 3339
//	  "state"?: {                            // remediation.Snapshot; absent without a cluster
//	    "exists": true, "uid"?, "replicas"?, "images"?: [{"container", "image"}],
//	    "previous_images"?: ["registry/app:v1", ...], "restarted_at"?,
//	    "unschedulable"?, "quarantine"?, "quarantine_policy"?, "phase"?, "labels"?
//	  },
//	  "history"?: {                          // absent when unknown
//	    "requester_actions": 0,      // steps the requester ran in the window
//	    "requester_denials": 0,      // of the requester's steps, how many were denied
//	    "target_actions": 0,         // steps that changed this target
//	    "namespace_quarantines": 0,  // pods of the target's namespace quarantined
//	    "window_seconds": 3600       // how far back the counts go
//	  }
//	}
//
// Fields marked ? are left out when empty, as encoding/json does for the
// remediation types. When state or history is absent, the rules that need
// them are skipped and the decision's reasons name each one skipped.
//
// # The default bundle
//
// The default bundle (package reins.policy) encodes reins' boundaries; each
// rule file has a _test.rego file of unit tests, run by Test (and by
// `reins policy test`). Rules add sentences to deny, {approvers, reason}
// objects to cosign, and explanations to notes; the effect is the most
// restrictive asked (deny > cosign > allow), approvers the most asked, and a
// step no rule permits is denied. Risk is low for allowed staging steps,
// medium for allowed production steps, high with 1 co-signer, critical with 2
// or more, and critical for an action no rule permits.
//
//   - actions.rego: per environment, which actions are allowed, and which need
//     co-signers (staging: scale, rollout-restart, set-image; production:
//     scale and rollout-restart, set-image, cordon and uncordon with 1
//     co-signer, delete-pod and quarantine-pod with 2); anything else,
//     including an unknown environment, is denied.
//   - blast_radius.rego: a production scale never goes below 1 replica and at
//     most doubles or halves the current replicas (from 0: at most 2), which
//     needs state (skipped without it); at most 3 pods of a namespace are
//     quarantined per window (needs history).
//   - justification.rego: every step has a justification of at least 20
//     characters (not counting surrounding space).
//   - namespaces.rego: kube-system, kube-public and the namespaces reins and
//     Vault run in are never touched.
//   - freeze.rego: during a change freeze every step is denied, except a
//     set-image that rolls back to an image in state.previous_images.
//   - requester.rego: the requester is an agent or a human; an agent must be
//     listed in data and acts only in its namespaces (and on Nodes only if its
//     scope says so); humans are not scope-limited.
//   - rate_limits.rego: an agent with more than 10 actions in the window needs
//     a co-signer, with more than 30 actions or more than 5 denials it is
//     denied; a target changed more than 3 times in the window needs a
//     co-signer (flapping), whoever asks.
//   - config.rego: config_problems, the checks of data.json.
//
// data.json holds every number and name the rules use:
//
//	{"reins": {"config": {
//	  "environments": {
//	    "<env>": {
//	      "risk": "low" | "medium",          // of an allowed step
//	      "actions": {"<action>": {"effect": "allow"} | {"effect": "cosign", "approvers": n}},
//	      "scale": {"min_replicas": 1, "max_factor": 2},   // optional
//	      "cosign": {"group": "oncall-sre", "escalation_group": "sre-leads",
//	                 "escalate_after_seconds": 900, "timeout_seconds": 3600}
//	    }
//	  },
//	  "protected_namespaces": ["kube-system", "kube-public", "reins-system", "vault"],
//	  "min_justification_chars": 20,
//	  "freezes": [{"start": "RFC 3339", "end": "RFC 3339", "reason": "...",
//	               "environments": ["production"]}],   // environments optional
//	  "agents": {"<agent name>": {"namespaces": ["shop", ...], "nodes": false}},
//	  "quarantine": {"max_per_namespace": 3},
//	  "rate_limits": {"agent_actions_cosign_over": 10, "agent_actions_deny_over": 30,
//	                  "agent_denials_deny_over": 5, "target_actions_cosign_over": 3,
//	                  "cosign_approvers": 1}
//	}}}
//
// The default data names one example agent, sre-agent, scoped to the shop and
// payments namespaces, and no freeze; operators write the default bundle out
// (WriteDefaultBundle) and edit their copy.
//
// # Tests and benchmarks
//
// Test runs a bundle's Rego unit tests with OPA's tester and returns a Report
// for `reins policy test [--dir DIR]`. Engine.Measure times N decisions and
// returns p50/p99, and the allocations per decision, for `reins bench
// policy`; TypicalInput is the input it is meant for.
//
// The default bundle is written for OPA's evaluator (decision.rego says how),
// and testdata/golden/decisions.json guards it: the decisions of a table of
// inputs that fire every rule, with several variants of the data, which
// TestDefaultBundleGolden checks one by one (go test -run
// TestDefaultBundleGolden -update rewrites it after a change of decisions
// that is meant).
//
// # Latency
//
// A decision of the default bundle on the typical input evaluates 27 rule
// bodies, 41 built-in calls and 104 expressions, and allocates about 420
// times (24 KB). On a shared 2-core machine that is a p50 of about 160-250µs
// with OPA's evaluator (topdown), and a p99 that follows the garbage
// collector: 0.7-0.9ms as `reins bench policy` measures it, in a small
// process whose collector runs every 240 decisions or so; 0.34-0.47ms with
// GOGC=400; 0.35-0.55ms at the default GOGC in a process that holds 50 MB of
// live heap (a stand-in for a worker's), where the collector runs 25 times
// less often. A worker therefore needs no collector setting of its own.
// OPA's fixed cost per evaluation and the conversion of the input come
// first: a bundle whose decision is a constant takes 9-16µs at p50 there,
// and 80-120µs at p99 (47-78µs with the collector off); each rule body a
// decision evaluates adds about 1.5µs. A p99 of 50µs is therefore out
// of reach of a bundle that decides with rules, on such a machine.
//
// Within that, the engine spends as little as it can: the input is built as
// OPA's AST directly (the plan, and the target's images and labels, are
// converted only if a rule reads them), the result is read as AST, metrics
// are off, the evaluation's deadline is polled rather than armed as a timer,
// and the bundle is written for the evaluator (decision.rego says how). OPA's
// options were measured too: without rule indexing a decision allocates 30%
// more; without early exit 1% fewer, and no measurable gain; the IR
// evaluation mode serves compile targets (Wasm) only. Partial evaluation does
// not help this bundle: rego.WithPartialEval leaves its rules with else as
// they are and grows the others, and OPA's bundle optimizer (opa build -O=1)
// leaves the bundle unchanged. The Go runtime's own settings, the GOGC and
// GOMEMLIMIT environment variables, set how often the collector runs in a
// worker.
package policies
