# Protected namespaces (data: protected_namespaces): the cluster's own, and the
# ones reins and Vault run in. reins never changes anything there.
package reins.policy

deny contains msg if {
	object.get(object.get(input, ["step", "target"], {}), "namespace", "") in cfg.protected_namespaces
	msg := sprintf("namespace %q is protected: reins never changes it", [target_namespace])
}
