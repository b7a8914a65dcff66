package reins.policy

# Iterates 10^12 times: only the evaluation timeout ends it.
decision := {"effect": "allow", "risk": "low", "reasons": []} if {
	r := numbers.range(1, 10000)
	some a in r
	some b in r
	some c in r
	a + b + c < 0
}
