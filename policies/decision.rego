# reins default policy: how the rules' findings become one decision.
#
# The engine queries data.reins.policy.decision with the input documented in
# doc.go. Rules in the other files of this package add to three sets:
#
#   deny    human sentences; any one of them denies the step
#   cosign  {"approvers": n, "reason": sentence}; the step needs n co-signers
#   notes   human sentences that explain without deciding (e.g. a rule that
#           was skipped for lack of cluster state)
#
# The effect is the most restrictive one asked for (deny > cosign > allow), and
# a step that no rule permits is denied: deny by default.
#
# Performance: every decision evaluates every rule that may apply, so rules
# start with a test of an input field against a constant where they can
# (input.step.action == "...", input.requester.kind == "agent"): OPA indexes
# those and skips rules that cannot apply without evaluating them.
package reins.policy

# The helpers below are defined whatever the input and data hold. Rules test
# them rather than input fields in negations, because OPA evaluates
# `not f(input.x)` as false (not true) when input.x is undefined; and a deny
# rule whose sentence cannot be built would not fire.

# cfg is the bundle's settings, data.json's "reins"."config".
default cfg := {}

cfg := data.reins.config

env_name := object.get(input, "environment", "")

step_action := object.get(input, ["step", "action"], "")

requester_kind := object.get(input, ["requester", "kind"], "")

requester_name := object.get(input, ["requester", "name"], "")

step_target := object.get(input, ["step", "target"], {})

# target_namespace is "" for cluster-scoped targets such as Nodes.
target_namespace := object.get(step_target, "namespace", "")

# target names the step's target for reasons, e.g. "shop/deployment/checkout".
target := concat("/", [part |
	some part in [target_namespace, lower(object.get(step_target, "kind", "")), object.get(step_target, "name", "")]
	part != ""
])

# window is how many seconds input.history covers (0 without history).
window := object.get(input, ["history", "window_seconds"], 0)

# env_cfg is the settings of the step's environment (undefined when unknown).
env_cfg := cfg.environments[env_name]

# action_rule is what the environment says about the step's action (undefined
# when the action is not listed).
action_rule := env_cfg.actions[step_action]

# permitted: the environment's action list allows the action, maybe with co-signers.
default permitted := false

permitted if object.get(action_rule, "effect", "") in {"allow", "cosign"}

default approvers := 0

approvers := max({c.approvers | some c in cosign}) if count(cosign) > 0

effect := "deny" if {
	count(deny) > 0
} else := "cosign" if {
	count(cosign) > 0
} else := "allow" if {
	permitted
} else := "deny"

# risk: an action no rule permits is critical; otherwise it follows the
# co-signers asked (1: high, 2 or more: critical), else the environment's risk.
risk := "critical" if {
	not permitted
} else := "critical" if {
	approvers >= 2
} else := "high" if {
	approvers == 1
} else := object.get(env_cfg, "risk", "high")

# reasons: why it is denied, then why co-signers are needed, then notes.
reasons := array.concat(
	array.concat([m | some m in deny], [c.reason | some c in cosign]),
	[n | some n in notes],
) if {
	effect != "allow"
} else := array.concat(
	[sprintf("%s is allowed in %s", [step_action, env_name])],
	[n | some n in notes],
)

cosign_cfg := object.get(cfg, ["environments", env_name, "cosign"], {})

decision := {
	"effect": effect,
	"risk": risk,
	"reasons": reasons,
} if effect != "cosign"

decision := object.union(
	object.filter(cosign_cfg, {"escalation_group", "escalate_after_seconds", "timeout_seconds"}),
	{
		"effect": effect,
		"risk": risk,
		"reasons": reasons,
		"approvers": approvers,
		"group": object.get(cosign_cfg, "group", ""),
	},
) if effect == "cosign"

# co_signers says "1 co-signer" or "2 co-signers".
co_signers(1) := "1 co-signer"

co_signers(n) := sprintf("%d co-signers", [n]) if n != 1
