package reins.policy_test

scale_to(x, current, wanted) := object.union(x, {"state": {"replicas": current}, "step": {"params": {"replicas": wanted}}})

test_production_may_double if {
	d := decide(scale_to(production_scale, 3, 6))
	d.effect == "allow"
	d.risk == "medium"
}

test_production_may_not_more_than_double if {
	d := decide(scale_to(production_scale, 3, 7))
	d.effect == "deny"
	reasons_with(d, "from 3 to 7 replicas is more than 2x in one step")
}

test_production_may_halve if {
	decide(scale_to(production_scale, 4, 2)).effect == "allow"
}

test_production_may_not_more_than_halve if {
	d := decide(scale_to(production_scale, 5, 2))
	d.effect == "deny"
	reasons_with(d, "from 5 to 2 replicas is less than 1/2 in one step")
}

test_production_never_scales_to_zero if {
	d := decide(scale_to(production_scale, 1, 0))
	d.effect == "deny"
	reasons_with(d, "to 0 replicas is below the minimum of 1 in production")
}

test_production_never_scales_to_zero_even_without_state if {
	d := decide(object.remove(object.union(production_scale, {"step": {"params": {"replicas": 0}}}), {"state"}))
	d.effect == "deny"
	reasons_with(d, "below the minimum of 1")
}

test_production_from_zero_at_most_factor if {
	decide(scale_to(production_scale, 0, 2)).effect == "allow"
	d := decide(scale_to(production_scale, 0, 3))
	d.effect == "deny"
	reasons_with(d, "from 0 to 3 replicas is too far")
}

test_staging_has_no_replica_limits if {
	decide(scale_to(staging_scale, 3, 0)).effect == "allow"
	decide(scale_to(staging_scale, 3, 30)).effect == "allow"
}

test_replica_limit_skipped_without_state if {
	d := decide(object.remove(scale_to(production_scale, 3, 7), {"state"}))
	d.effect == "allow"
	reasons_with(d, "skipped the replica-change limit: no cluster state (input.state)")
}

test_replica_limit_skipped_when_state_has_no_replicas if {
	d := decide(object.union(object.remove(production_scale, {"state"}), {"state": {"exists": false}}))
	d.effect == "allow"
	reasons_with(d, "skipped the replica-change limit: the cluster state has no current replica count")
}

quarantine(n) := object.union(with_step("production", pod_step("kubernetes.quarantine-pod")), {"history": {"namespace_quarantines": n}})

test_quarantine_below_namespace_limit_needs_cosigners if {
	d := decide(quarantine(2))
	d.effect == "cosign"
	d.approvers == 2
}

test_quarantine_over_namespace_limit_is_denied if {
	d := decide(quarantine(3))
	d.effect == "deny"
	reasons_with(d, "3 pods of namespace \"shop\" were already quarantined in the last 3600 seconds; at most 3 may be")
}

test_quarantine_limit_skipped_without_history if {
	d := decide(object.remove(quarantine(5), {"history"}))
	d.effect == "cosign"
	reasons_with(d, "skipped the quarantine limit per namespace: no history (input.history)")
}
