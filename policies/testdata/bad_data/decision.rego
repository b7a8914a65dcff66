package reins.policy

decision := {"effect": "allow", "risk": "low", "reasons": []}
