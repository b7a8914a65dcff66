package reins.policy_test

import data.reins.policy

test_allows if {
	policy.decision.effect == "allow"
}

test_risk_is_low if {
	policy.decision.risk == "low"
}

# Deliberately failing: the policy allows.
test_denies if {
	policy.decision.effect == "deny"
}

todo_test_later if {
	false
}
