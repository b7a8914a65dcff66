package reins.policy

decision := {"effect": "yes", "risk": "low", "reasons": ["looks fine"]}
