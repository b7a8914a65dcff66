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
# Performance: every decision evaluates every rule that may apply, and the
# engine's latency goal is tight, so the rules are written for OPA's evaluator
# (testdata/golden/decisions.json holds the decisions they must keep making):
#   - rules start with a test of an input field against a constant where they
#     can (input.step.action == "...", input.requester.kind == "agent"): OPA
#     indexes those and skips the rules that cannot apply without evaluating
#     them;
#   - a value used by several rules is a rule of its own (cfg, env_cfg,
#     permitted), which OPA computes once per decision; a value used once is
#     computed where it is used: each rule evaluated costs more than the
#     built-in calls it saves;
#   - in the rules most decisions evaluate, a test of a built-in's boolean
#     result is written f(x) == false rather than not f(x), and a test that a
#     field is absent or false as object.get(input, "field", false) == false:
#     OPA evaluates a negation as a query of its own;
#   - where an absent field must make the rule fail anyway, it is read as a
#     reference (input.step.action), not with object.get: each built-in call
#     costs an evaluation step and allocations, a reference much less;
#   - the sentences of the reasons, and the helpers that only they use
#     (env_name, target, window...), are computed only when a rule fires.

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
env_cfg := cfg.environments[input.environment]

# action_rule is what the environment says about the step's action (undefined
# when the action is not listed).
action_rule := env_cfg.actions[input.step.action]

# permitted: the environment's action list allows the action, maybe with co-signers.
default permitted := false

permitted if env_cfg.actions[input.step.action].effect in {"allow", "cosign"}

default approvers := 0

approvers := max({c.approvers | some c in cosign}) if count(cosign) > 0

# risk: an action no rule permits is critical; otherwise it follows the
# co-signers asked (1: high, 2 or more: critical), else the environment's risk.
risk := "critical" if {
	not permitted
} else := "critical" if {
	approvers >= 2
} else := "high" if {
	approvers == 1
} else := object.get(env_cfg, "risk", "high")

# Reasons list why the step is denied (in order), then why co-signers are
# needed (by approvers, then sentence), then the notes (in order).
cosign_reasons := [c.reason | some c in cosign]

cosign_cfg := object.get(cfg, ["environments", env_name, "cosign"], {})

decision := {
	"effect": "allow",
	# An allowed step asks no co-signer: its risk is the environment's.
	"risk": object.get(env_cfg, "risk", "high"),
	"reasons": array.concat(
		[sprintf("%s is allowed in %s", [input.step.action, input.environment])],
		sort(notes),
	),
} if {
	# The most common decision comes first: the others are not tried.
	deny == set()
	cosign == set()
	permitted
} else := {
	"effect": "deny",
	"risk": risk,
	"reasons": array.concat(array.concat(sort(deny), cosign_reasons), sort(notes)),
} if {
	deny != set()
} else := object.union(
	object.filter(cosign_cfg, {"escalation_group", "escalate_after_seconds", "timeout_seconds"}),
	{
		"effect": "cosign",
		"risk": risk,
		"reasons": array.concat(cosign_reasons, sort(notes)),
		"approvers": approvers,
		"group": object.get(cosign_cfg, "group", ""),
	},
) if {
	cosign != set()
} else := {
	# Nothing denies, nothing asks for co-signers, and nothing permits.
	"effect": "deny",
	"risk": "critical",
	"reasons": sort(notes),
}

# co_signers says "1 co-signer" or "2 co-signers".
co_signers(1) := "1 co-signer"

co_signers(n) := sprintf("%d co-signers", [n]) if n != 1
