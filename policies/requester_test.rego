package reins.policy_test

test_agent_in_scope_is_allowed if {
	decide(staging_scale).effect == "allow"
	decide(object.union(staging_scale, {"step": {"target": {"namespace": "payments"}}})).effect == "allow"
}

test_agent_out_of_scope_is_denied if {
	d := decide(object.union(staging_scale, {"step": {"target": {"namespace": "billing"}}}))
	d.effect == "deny"
	reasons_with(d, "agent \"sre-agent\" may not act in namespace \"billing\"; its scope is: shop, payments")
}

test_unknown_agent_is_denied if {
	d := decide(object.union(staging_scale, {"requester": {"name": "rogue-bot"}}))
	d.effect == "deny"
	reasons_with(d, "agent \"rogue-bot\" is unknown")
}

test_agent_without_name_is_denied if {
	d := decide(object.union(staging_scale, {"requester": {"kind": "agent", "name": ""}}))
	d.effect == "deny"
	reasons_with(d, "agent \"\" is unknown")
	d2 := decide(object.union(object.remove(staging_scale, {"requester"}), {"requester": {"kind": "agent"}}))
	d2.effect == "deny"
	reasons_with(d2, "agent \"\" is unknown")
}

test_humans_are_not_scope_limited if {
	decide(as_human(object.union(staging_scale, {"step": {"target": {"namespace": "billing"}}}))).effect == "allow"
}

test_agent_needs_nodes_in_scope_for_nodes if {
	x := with_step("production", node_step("kubernetes.cordon"))
	d := decide(x)
	d.effect == "deny"
	reasons_with(d, "agent \"sre-agent\" may not act on Nodes such as node/n-17")
	d2 := decide(x) with data.reins.config.agents["sre-agent"].nodes as true
	d2.effect == "cosign"
}

test_requester_kind_must_be_agent_or_human if {
	d := decide(object.union(staging_scale, {"requester": {"kind": "robot"}}))
	d.effect == "deny"
	reasons_with(d, "requester kind \"robot\" is neither \"agent\" nor \"human\"")
	d2 := decide(object.remove(staging_scale, {"requester"}))
	d2.effect == "deny"
	reasons_with(d2, "requester kind \"\" is neither")
}
