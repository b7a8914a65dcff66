# Change freezes (data: freezes, a list of {start, end, reason, environments?};
# start and end are RFC 3339, the window is [start, end), and a freeze without
# environments applies to all). During a freeze every step is denied except a
# set-image that rolls back to an image the workload ran before
# (input.state.previous_images).
package reins.policy

deny contains msg if {
	is_string(object.get(input, "now", null)) == false
	msg := "input.now is missing: the change freezes cannot be checked"
}

active_freezes contains f if {
	some f in cfg.freezes
	env_name in object.get(f, "environments", [env_name])
	now_ns := time.parse_rfc3339_ns(input.now)
	time.parse_rfc3339_ns(f.start) <= now_ns
	now_ns < time.parse_rfc3339_ns(f.end)
}

rollback if {
	input.step.action == "kubernetes.set-image"
	input.step.params.image in input.state.previous_images
}

# The two rules below go through cfg.freezes before active_freezes: with no
# freeze in data (the usual case), they end there, without evaluating it.
deny contains msg if {
	some f in cfg.freezes
	f in active_freezes
	not rollback
	msg := sprintf("change freeze from %s to %s: %s", [f.start, f.end, object.get(f, "reason", "no reason given")])
}

notes contains msg if {
	some f in cfg.freezes
	f in active_freezes
	msg := freeze_note
}

freeze_note := sprintf("allowed during the change freeze as a rollback: %s ran on %s before", [input.step.params.image, target]) if {
	rollback
} else := "could not check for a rollback, which a freeze allows: no cluster state (input.state)" if {
	input.step.action == "kubernetes.set-image"
	not input.state
}
