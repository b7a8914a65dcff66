# A bundle that allows every step: the Kubernetes integration tests use it to
# exercise actions that the default bundle would send to co-signers.
package reins.policy

decision := {
	"effect": "allow",
	"risk": "low",
	"reasons": ["the integration-test bundle allows every step"],
}
