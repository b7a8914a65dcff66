package reins.policy_test

freezes := [{"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "reason": "quarterly close"}]

test_freeze_denies_steps_inside_the_window if {
	d := decide(production_scale) with data.reins.config.freezes as freezes
	d.effect == "deny"
	reasons_with(d, "change freeze from 2026-06-01T00:00:00Z to 2026-06-02T00:00:00Z: quarterly close")
}

test_freeze_window_is_start_inclusive_end_exclusive if {
	decide(object.union(production_scale, {"now": "2026-06-01T00:00:00Z"})).effect == "deny" with data.reins.config.freezes as freezes
	decide(object.union(production_scale, {"now": "2026-05-31T23:59:59Z"})).effect == "allow" with data.reins.config.freezes as freezes
	decide(object.union(production_scale, {"now": "2026-06-02T00:00:00Z"})).effect == "allow" with data.reins.config.freezes as freezes
}

test_freeze_reads_time_zones if {
	# 2026-06-02T01:30:00+02:00 is 2026-06-01T23:30:00Z: inside.
	d := decide(object.union(production_scale, {"now": "2026-06-02T01:30:00+02:00"})) with data.reins.config.freezes as freezes
	d.effect == "deny"
}

test_freeze_limited_to_environments if {
	only_prod := [object.union(freezes[0], {"environments": ["production"]})]
	decide(production_scale).effect == "deny" with data.reins.config.freezes as only_prod
	decide(staging_scale).effect == "allow" with data.reins.config.freezes as only_prod
}

rollback := object.union(with_step("production", set_image_step), {"state": {"previous_images": ["registry.example/checkout:v1.4.2", "registry.example/checkout:v1.4.1"]}})

test_freeze_lets_a_rollback_through if {
	d := decide(rollback) with data.reins.config.freezes as freezes
	d.effect == "cosign"
	d.approvers == 1
	reasons_with(d, "allowed during the change freeze as a rollback: registry.example/checkout:v1.4.2 ran on shop/deployment/checkout before")
}

test_freeze_denies_a_new_image if {
	d := decide(object.union(rollback, {"step": {"params": {"image": "registry.example/checkout:v1.6.0"}}})) with data.reins.config.freezes as freezes
	d.effect == "deny"
	reasons_with(d, "change freeze")
}

test_freeze_denies_set_image_without_state if {
	d := decide(object.remove(rollback, {"state"})) with data.reins.config.freezes as freezes
	d.effect == "deny"
	reasons_with(d, "could not check for a rollback, which a freeze allows: no cluster state (input.state)")
}

test_freeze_rollback_exception_is_only_for_set_image if {
	d := decide(object.union(production_scale, {"state": {"previous_images": ["registry.example/checkout:v1.4.2"]}})) with data.reins.config.freezes as freezes
	d.effect == "deny"
}

test_missing_now_is_denied if {
	d := decide(object.remove(staging_scale, {"now"}))
	d.effect == "deny"
	reasons_with(d, "input.now is missing")
}
