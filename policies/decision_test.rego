package reins.policy_test

test_allow_has_effect_risk_and_reasons_only if {
	d := decide(staging_scale)
	d == {"effect": "allow", "risk": "low", "reasons": ["kubernetes.scale is allowed in staging"]}
}

test_deny_wins_over_cosign if {
	# set-image in production needs a co-signer, but kube-system is protected.
	d := decide(object.union(with_step("production", set_image_step), {"step": {"target": {"namespace": "kube-system"}}}))
	d.effect == "deny"
	not d.approvers
	reasons_with(d, "namespace \"kube-system\" is protected")
	reasons_with(d, "needs 1 co-signer")
}

test_approvers_is_the_most_asked if {
	# delete-pod asks 2, a busy agent 1: 2.
	d := decide(object.union(with_step("production", pod_step("kubernetes.delete-pod")), {"history": {"requester_actions": 11}}))
	d.effect == "cosign"
	d.approvers == 2
	d.risk == "critical"
	reasons_with(d, "needs 2 co-signers")
	reasons_with(d, "a human must co-sign")
}

test_every_denying_rule_gives_its_reason if {
	d := decide(object.union(production_scale, {
		"requester": {"name": "rogue-bot"},
		"step": {"params": {"replicas": 0}, "justification": "why not", "target": {"namespace": "vault"}},
	}))
	d.effect == "deny"
	count(d.reasons) == 5
	reasons_with(d, "agent \"rogue-bot\" is unknown")
	reasons_with(d, "below the minimum of 1")
	reasons_with(d, "from 3 to 0 replicas is less than 1/2")
	reasons_with(d, "the justification has 7 characters")
	reasons_with(d, "namespace \"vault\" is protected")
}

test_a_deny_always_says_why if {
	every x in [
		with_step("dev", scale_step),
		object.union(staging_scale, {"step": {"justification": ""}}),
		object.union(staging_scale, {"requester": {"name": "x"}}),
	] {
		d := decide(x)
		d.effect == "deny"
		count(d.reasons) > 0
	}
}
