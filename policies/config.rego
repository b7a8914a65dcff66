# config_problems checks the policy data once, when the engine loads the
# bundle: a bundle with any problem is refused (the last good bundle stays in
# force), because a missing setting would silently turn its rule off. It is
# not part of each decision, which keeps decisions fast.
package reins.policy

required_settings := {
	"environments",
	"protected_namespaces",
	"min_justification_chars",
	"freezes",
	"agents",
	"quarantine",
	"rate_limits",
}

config_problems contains msg if {
	some key in required_settings
	not key in object.keys(cfg)
	msg := sprintf("reins.config has no %q setting", [key])
}

config_problems contains msg if {
	some name, env in object.get(cfg, "environments", {})
	some action, rule in object.get(env, "actions", {})
	not valid_action_rule(rule)
	msg := sprintf("reins.config.environments.%s.actions[%q] must be {\"effect\": \"allow\"} or {\"effect\": \"cosign\", \"approvers\": n} with n >= 1", [name, action])
}

config_problems contains msg if {
	some name, env in object.get(cfg, "environments", {})
	some action, rule in object.get(env, "actions", {})
	rule.effect == "cosign"
	not is_string(object.get(env, ["cosign", "group"], null))
	msg := sprintf("reins.config.environments.%s.cosign.group must name who may co-sign %s", [name, action])
}

config_problems contains msg if {
	some i, f in object.get(cfg, "freezes", [])
	not valid_freeze(f)
	msg := sprintf("reins.config.freezes[%d] needs RFC 3339 strings start and end", [i])
}

config_problems contains msg if {
	some key in ["agent_actions_cosign_over", "agent_actions_deny_over", "agent_denials_deny_over", "target_actions_cosign_over"]
	not is_number(object.get(cfg, ["rate_limits", key], null))
	msg := sprintf("reins.config.rate_limits.%s must be a number", [key])
}

config_problems contains msg if {
	not is_number(object.get(cfg, ["quarantine", "max_per_namespace"], null))
	msg := "reins.config.quarantine.max_per_namespace must be a number"
}

valid_action_rule(rule) if rule.effect == "allow"

valid_action_rule(rule) if {
	rule.effect == "cosign"
	rule.approvers >= 1
}

valid_freeze(f) if {
	is_string(f.start)
	is_string(f.end)
	time.parse_rfc3339_ns(f.start) < time.parse_rfc3339_ns(f.end)
}
