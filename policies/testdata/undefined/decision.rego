package reins.policy

# Defined only for an input nobody sends: undefined otherwise.
decision := {"effect": "allow", "risk": "low", "reasons": []} if input.environment == "nowhere"
