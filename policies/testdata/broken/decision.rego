package reins.policy

# A syntax error: the object is never closed, so the file ends (line 5) inside it.
decision := {"effect": "allow", "risk": "low", "reasons": [
