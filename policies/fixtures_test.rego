# Inputs shared by the unit tests of the default bundle.
package reins.policy_test

import data.reins.policy

# decide is the decision for input in.
decide(x) := d if {
	d := policy.decision with input as x
}

# reasons_with tells whether one of d's reasons contains text.
reasons_with(d, text) if {
	some r in d.reasons
	contains(r, text)
}

now := "2026-06-01T12:00:00Z"

scale_step := {
	"action": "kubernetes.scale",
	"target": {"namespace": "shop", "kind": "Deployment", "name": "checkout"},
	"params": {"replicas": 4},
	"justification": "checkout p99 latency is above its SLO; add capacity",
}

# staging_scale: the sre-agent scales shop/checkout from 3 to 4 in staging.
staging_scale := {
	"plan": {
		"incident": {"source": "alertmanager", "fingerprint": "f1"},
		"requester": {"kind": "agent", "name": "sre-agent"},
		"environment": "staging",
		"explanation": "checkout is saturated",
		"steps": [scale_step],
	},
	"step": scale_step,
	"index": 0,
	"requester": {"kind": "agent", "name": "sre-agent"},
	"environment": "staging",
	"now": now,
	"state": {"exists": true, "replicas": 3},
	"history": {
		"requester_actions": 0,
		"requester_denials": 0,
		"target_actions": 0,
		"namespace_quarantines": 0,
		"window_seconds": 3600,
	},
}

production_scale := object.union(staging_scale, {"environment": "production"})

# with_step replaces the step wholly (no merge with the scale step).
with_step(env, step) := object.union(object.remove(staging_scale, {"step"}), {"environment": env, "step": step})

set_image_step := {
	"action": "kubernetes.set-image",
	"target": {"namespace": "shop", "kind": "Deployment", "name": "checkout"},
	"params": {"container": "app", "image": "registry.example/checkout:v1.4.2"},
	"justification": "v1.5.0 leaks memory; go back to the last good release",
}

restart_step := {
	"action": "kubernetes.rollout-restart",
	"target": {"namespace": "shop", "kind": "Deployment", "name": "checkout"},
	"params": {},
	"justification": "pods are stuck on a stale DNS cache after the incident",
}

pod_step(action) := {
	"action": action,
	"target": {"namespace": "shop", "kind": "Pod", "name": "checkout-7d9f-x2"},
	"params": {},
	"justification": "this pod is crash-looping and serving corrupted responses",
}

node_step(action) := {
	"action": action,
	"target": {"kind": "Node", "name": "n-17"},
	"params": {},
	"justification": "node n-17 reports disk pressure and evicts pods",
}

# as_human makes the requester a human (not scope-limited).
as_human(x) := object.union(x, {"requester": {"kind": "human", "name": "alice"}})
