// Package deploy holds reins' deployment files — Kubernetes RBAC manifests,
// Vault roles and policy — embedded, so that `reins dev` and the integration
// tests apply exactly what an operator deploys.
package deploy

import "embed"

// Files are the manifests (*.yaml) and Vault policies (*.hcl) of this folder.
//
//go:embed *.yaml *.hcl
var Files embed.FS

// File names within Files.
const (
	WorkerRBAC        = "worker-rbac.yaml"
	StepRBAC          = "step-rbac.yaml"
	VaultRBAC         = "vault-rbac.yaml"
	VaultRoles        = "vault-roles.yaml"
	VaultWorkerPolicy = "vault-policy-worker.hcl"
)
