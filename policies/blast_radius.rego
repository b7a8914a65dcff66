# Blast radius: how far one step may move a workload, and how many pods a
# namespace may lose to quarantine.
#
# data: environments.<env>.scale.min_replicas   fewest replicas a scale may set
#       environments.<env>.scale.max_factor     one scale may at most multiply or
#                                               divide the current replicas by it
#       quarantine.max_per_namespace            quarantines per namespace per window
package reins.policy

deny contains msg if {
	input.step.action == "kubernetes.scale"
	min_replicas := env_cfg.scale.min_replicas
	input.step.params.replicas < min_replicas
	msg := sprintf("scaling %s to %d replicas is below the minimum of %d in %s", [target, input.step.params.replicas, min_replicas, env_name])
}

deny contains msg if {
	input.step.action == "kubernetes.scale"
	msg := replica_change_too_large(input.state.replicas, input.step.params.replicas, env_cfg.scale.max_factor)
}

# replica_change_too_large says why going from current to wanted replicas in
# one step moves more than factor allows; undefined when it does not.
replica_change_too_large(current, wanted, factor) := msg if {
	current > 0
	wanted > current * factor
	msg := sprintf("scaling %s from %d to %d replicas is more than %dx in one step: scale in steps of at most %dx", [target, current, wanted, factor, factor])
} else := msg if {
	wanted * factor < current
	msg := sprintf("scaling %s from %d to %d replicas is less than 1/%d in one step: scale down in steps of at most 1/%d", [target, current, wanted, factor, factor])
} else := msg if {
	current == 0
	wanted > factor
	msg := sprintf("scaling %s from 0 to %d replicas is too far in one step: from 0 scale to at most %d", [target, wanted, factor])
}

# Without a current replica count (no state, or none in it), the limit above
# cannot be checked: the note says so.
notes contains msg if {
	input.step.action == "kubernetes.scale"
	is_number(object.get(input, ["state", "replicas"], null)) == false
	env_cfg.scale.max_factor
	msg := replica_change_skipped
}

replica_change_skipped := "skipped the replica-change limit: no cluster state (input.state) to compare with" if {
	not input.state
} else := "skipped the replica-change limit: the cluster state has no current replica count" if {
	not is_number(object.get(input.state, "replicas", null))
}

deny contains msg if {
	input.step.action == "kubernetes.quarantine-pod"
	limit := cfg.quarantine.max_per_namespace
	n := input.history.namespace_quarantines
	n >= limit
	msg := sprintf("%d pods of namespace %q were already quarantined in the last %d seconds; at most %d may be", [n, target_namespace, window, limit])
}

notes contains msg if {
	input.step.action == "kubernetes.quarantine-pod"
	not input.history
	msg := "skipped the quarantine limit per namespace: no history (input.history)"
}
