package reins.policy

decision := {"effect": "allow", "risk": "low", "reasons": []}

config_problems contains "reins.config.limit must be a number" if not is_number(data.reins.config.limit)
