# Which actions each environment allows (data: environments.<env>.actions,
# each {"effect": "allow"} or {"effect": "cosign", "approvers": n}).
# An environment or an action that is not listed is denied.
package reins.policy

deny contains msg if {
	permitted == false
	msg := action_denial
}

# action_denial says why the environment's action list does not permit the
# step.
action_denial := sprintf("environment %q has no policy: reins acts only in %s", [env_name, concat(", ", object.keys(object.get(cfg, "environments", {})))]) if {
	not env_cfg
} else := sprintf("%s is not permitted in %s (permitted: %s)", [step_action, env_name, concat(", ", object.keys(object.get(env_cfg, "actions", {})))]) if {
	not action_rule
} else := sprintf("%s is forbidden in %s", [step_action, env_name])

cosign contains {"approvers": n, "reason": msg} if {
	env_cfg.actions[input.step.action].effect == "cosign"
	n := object.get(action_rule, "approvers", 0)
	msg := sprintf("%s in %s needs %s from %s", [step_action, env_name, co_signers(n), object.get(cosign_cfg, "group", "(no group set)")])
}

deny contains msg if {
	input.step.action == "kubernetes.scale"
	is_number(object.get(input.step, ["params", "replicas"], null)) == false
	msg := sprintf("scaling %s needs params.replicas, the replica count to set", [target])
}
