package reins.policy_test

import data.reins.policy

# Note: `with` on a path below data.reins.config merges objects into the
# bundle's data, so tests that remove settings replace data.reins.config whole.

test_default_data_has_no_problems if {
	count(policy.config_problems) == 0
}

test_missing_settings_are_problems if {
	problems := policy.config_problems with data.reins.config as {"environments": {}}
	"reins.config has no \"protected_namespaces\" setting" in problems
	missing := {p | some p in problems; contains(p, "has no")}
	count(missing) == 6
}

test_no_config_at_all_is_a_problem if {
	problems := policy.config_problems with data.reins.config as {}
	count({p | some p in problems; contains(p, "has no")}) == 7
}

test_cosign_needs_approvers if {
	problems := policy.config_problems with data.reins.config.environments.production.actions["kubernetes.set-image"].approvers as 0
	"reins.config.environments.production.actions[\"kubernetes.set-image\"] must be {\"effect\": \"allow\"} or {\"effect\": \"cosign\", \"approvers\": n} with n >= 1" in problems
}

test_unknown_effect_is_a_problem if {
	problems := policy.config_problems with data.reins.config.environments.staging.actions["kubernetes.scale"] as {"effect": "yes"}
	count(problems) == 1
}

test_cosign_needs_a_group if {
	problems := policy.config_problems with data.reins.config as json.patch(data.reins.config, [{"op": "remove", "path": "/environments/production/cosign"}])
	"reins.config.environments.production.cosign.group must name who may co-sign kubernetes.set-image" in problems
}

test_freeze_needs_start_and_end if {
	problems := policy.config_problems with data.reins.config.freezes as [
		{"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "reason": "ok"},
		{"start": "2026-06-01T00:00:00Z", "reason": "typo"},
		{"start": "2026-06-02T00:00:00Z", "end": "2026-06-01T00:00:00Z", "reason": "backwards"},
	]
	problems == {
		"reins.config.freezes[1] needs RFC 3339 strings start and end",
		"reins.config.freezes[2] needs RFC 3339 strings start and end",
	}
}

test_rate_limits_must_be_numbers if {
	problems := policy.config_problems with data.reins.config.rate_limits.agent_actions_deny_over as "30"
	problems == {"reins.config.rate_limits.agent_actions_deny_over must be a number"}
}

test_quarantine_limit_must_be_a_number if {
	problems := policy.config_problems with data.reins.config as json.patch(data.reins.config, [{"op": "replace", "path": "/quarantine", "value": {}}])
	problems == {"reins.config.quarantine.max_per_namespace must be a number"}
}
