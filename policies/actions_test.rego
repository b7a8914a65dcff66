package reins.policy_test

test_staging_allows_scale_restart_set_image if {
	every step in [scale_step, restart_step, set_image_step] {
		d := decide(with_step("staging", step))
		d.effect == "allow"
		d.risk == "low"
		reasons_with(d, "is allowed in staging")
	}
}

test_staging_denies_unlisted_actions if {
	every step in [node_step("kubernetes.cordon"), node_step("kubernetes.uncordon"), pod_step("kubernetes.delete-pod"), pod_step("kubernetes.quarantine-pod")] {
		d := decide(as_human(with_step("staging", step)))
		d.effect == "deny"
		reasons_with(d, sprintf("%s is not permitted in staging", [step.action]))
	}
}

test_production_allows_scale_and_restart_at_medium_risk if {
	every step in [scale_step, restart_step] {
		d := decide(with_step("production", step))
		d.effect == "allow"
		d.risk == "medium"
	}
}

test_production_set_image_needs_one_cosigner if {
	d := decide(with_step("production", set_image_step))
	d.effect == "cosign"
	d.approvers == 1
	d.risk == "high"
	d.group == "oncall-sre"
	d.escalation_group == "sre-leads"
	d.escalate_after_seconds == 900
	d.timeout_seconds == 3600
	reasons_with(d, "kubernetes.set-image in production needs 1 co-signer from oncall-sre")
}

test_production_cordon_and_uncordon_need_one_cosigner if {
	every action in ["kubernetes.cordon", "kubernetes.uncordon"] {
		d := decide(as_human(with_step("production", node_step(action))))
		d.effect == "cosign"
		d.approvers == 1
		d.risk == "high"
	}
}

test_production_delete_and_quarantine_need_two_cosigners if {
	every action in ["kubernetes.delete-pod", "kubernetes.quarantine-pod"] {
		d := decide(with_step("production", pod_step(action)))
		d.effect == "cosign"
		d.approvers == 2
		d.risk == "critical"
		reasons_with(d, "needs 2 co-signers")
	}
}

test_unknown_environment_is_denied if {
	d := decide(with_step("dev", scale_step))
	d.effect == "deny"
	d.risk == "critical"
	reasons_with(d, "environment \"dev\" has no policy: reins acts only in production, staging")
}

test_missing_environment_is_denied if {
	d := decide(object.remove(staging_scale, {"environment"}))
	d.effect == "deny"
	reasons_with(d, "environment \"\" has no policy")
}

test_unknown_action_is_denied if {
	d := decide(with_step("production", object.union(scale_step, {"action": "kubernetes.explode"})))
	d.effect == "deny"
	d.risk == "critical"
	reasons_with(d, "kubernetes.explode is not permitted in production")
}

test_action_listed_as_deny_is_denied if {
	d := decide(staging_scale) with data.reins.config.environments.staging.actions["kubernetes.scale"] as {"effect": "deny"}
	d.effect == "deny"
	reasons_with(d, "kubernetes.scale is forbidden in staging")
}

test_cosign_with_zero_approvers_in_data_asks_for_zero if {
	# The engine refuses approvers < 1 on a cosign as malformed: deny.
	d := decide(with_step("production", set_image_step)) with data.reins.config.environments.production.actions["kubernetes.set-image"].approvers as 0
	d.effect == "cosign"
	d.approvers == 0
}

test_scale_without_replicas_is_denied if {
	d := decide(with_step("staging", object.remove(scale_step, {"params"})))
	d.effect == "deny"
	reasons_with(d, "needs params.replicas")
}
