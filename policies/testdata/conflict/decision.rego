package reins.policy

# Two values for one complete rule: an evaluation (conflict) error.
decision := {"effect": "allow", "risk": "low", "reasons": []} if input.step.action

decision := {"effect": "deny", "risk": "low", "reasons": ["no"]} if input.environment
