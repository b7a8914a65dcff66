package reins.policy

# x is unsafe (never bound): a compile error on line 5.
decision := {"effect": "allow", "risk": "low", "reasons": []} if {
	x > 1
}
