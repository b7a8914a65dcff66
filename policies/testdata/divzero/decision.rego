package reins.policy

# A built-in error at evaluation: division by zero.
decision := {"effect": "allow", "risk": "low", "reasons": [], "n": n} if {
	zero := count(object.keys(input)) * 0
	n := 1 / zero
}
