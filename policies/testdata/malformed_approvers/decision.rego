package reins.policy

decision := {"effect": "cosign", "approvers": 0, "group": "oncall-sre", "risk": "high", "reasons": ["needs someone"]}
