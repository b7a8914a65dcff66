# Who asks (input.requester) and what an agent may touch (data: agents, each
# {"namespaces": [...], "nodes": bool}). Humans are not scope-limited; agents act
# only inside their scope, and an agent not listed in data is denied.
package reins.policy

deny contains msg if {
	object.get(input, ["requester", "kind"], "") != "agent"
	object.get(input, ["requester", "kind"], "") != "human"
	msg := sprintf("requester kind %q is neither \"agent\" nor \"human\": reins cannot tell which limits apply", [object.get(input, ["requester", "kind"], "")])
}

deny contains msg if {
	input.requester.kind == "agent"
	object.get(cfg, ["agents", object.get(input, ["requester", "name"], "")], false) == false
	msg := sprintf("agent %q is unknown: list it and its scope under agents in the policy data", [requester_name])
}

deny contains msg if {
	input.requester.kind == "agent"
	scope := cfg.agents[object.get(input, ["requester", "name"], "")]
	object.get(object.get(input, ["step", "target"], {}), "kind", "") != "Node"
	not object.get(object.get(input, ["step", "target"], {}), "namespace", "") in object.get(scope, "namespaces", [])
	msg := sprintf("agent %q may not act in namespace %q; its scope is: %s", [requester_name, target_namespace, concat(", ", object.get(scope, "namespaces", []))])
}

deny contains msg if {
	input.requester.kind == "agent"
	input.step.target.kind == "Node"
	scope := cfg.agents[requester_name]
	object.get(scope, "nodes", false) != true
	msg := sprintf("agent %q may not act on Nodes such as %s; its scope has no \"nodes\": true", [requester_name, target])
}
