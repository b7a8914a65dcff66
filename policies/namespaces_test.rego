package reins.policy_test

in_namespace(x, ns) := object.union(x, {"step": {"target": {"namespace": ns}}})

test_protected_namespaces_are_denied if {
	every ns in ["kube-system", "kube-public", "reins-system", "vault"] {
		d := decide(as_human(in_namespace(staging_scale, ns)))
		d.effect == "deny"
		reasons_with(d, sprintf("namespace %q is protected: reins never changes it", [ns]))
	}
}

test_protected_namespace_denies_even_a_cosign_action if {
	d := decide(in_namespace(with_step("production", pod_step("kubernetes.delete-pod")), "kube-system"))
	d.effect == "deny"
	reasons_with(d, "namespace \"kube-system\" is protected")
}

test_other_namespaces_are_not_protected if {
	decide(as_human(in_namespace(staging_scale, "kube-systems"))).effect == "allow"
}
