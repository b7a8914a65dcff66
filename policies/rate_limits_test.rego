package reins.policy_test

with_history(x, h) := object.union(x, {"history": h})

test_busy_agent_needs_a_cosigner if {
	d := decide(with_history(staging_scale, {"requester_actions": 11}))
	d.effect == "cosign"
	d.approvers == 1
	d.risk == "high"
	d.group == "oncall-sre"
	reasons_with(d, "agent \"sre-agent\" took 11 actions in the last 3600 seconds, more than 10: a human must co-sign")
	decide(with_history(staging_scale, {"requester_actions": 10})).effect == "allow"
}

test_very_busy_agent_is_denied if {
	d := decide(with_history(staging_scale, {"requester_actions": 31}))
	d.effect == "deny"
	reasons_with(d, "more than 30: it is denied until the window passes")
	decide(with_history(staging_scale, {"requester_actions": 30})).effect == "cosign"
}

test_agent_with_many_denials_is_denied if {
	d := decide(with_history(staging_scale, {"requester_denials": 6}))
	d.effect == "deny"
	reasons_with(d, "had 6 steps denied in the last 3600 seconds, more than 5")
	decide(with_history(staging_scale, {"requester_denials": 5})).effect == "allow"
}

test_humans_have_no_requester_rate_limit if {
	decide(as_human(with_history(staging_scale, {"requester_actions": 100, "requester_denials": 100}))).effect == "allow"
}

test_flapping_target_needs_a_cosigner_for_everyone if {
	every x in [staging_scale, as_human(staging_scale)] {
		d := decide(with_history(x, {"target_actions": 4}))
		d.effect == "cosign"
		reasons_with(d, "shop/deployment/checkout was changed 4 times in the last 3600 seconds, more than 3")
	}
	decide(with_history(staging_scale, {"target_actions": 3})).effect == "allow"
}

test_rate_limits_skipped_without_history if {
	d := decide(object.remove(with_history(staging_scale, {"requester_actions": 100}), {"history"}))
	d.effect == "allow"
	reasons_with(d, "skipped the rate limits: no history (input.history)")
}
