package reins.policy_test

justified(text) := object.union(staging_scale, {"step": {"justification": text}})

test_justification_of_20_characters_is_enough if {
	decide(justified("12345678901234567890")).effect == "allow"
}

test_justification_of_19_characters_is_denied if {
	d := decide(justified("1234567890123456789"))
	d.effect == "deny"
	reasons_with(d, "the justification has 19 characters, fewer than the 20 required")
}

test_justification_padding_does_not_count if {
	d := decide(justified("   short reason         "))
	d.effect == "deny"
	reasons_with(d, "the justification has 12 characters")
}

test_missing_justification_is_denied if {
	d := decide(with_step("staging", object.remove(scale_step, {"justification"})))
	d.effect == "deny"
	reasons_with(d, "the justification has 0 characters")
}

test_justification_counts_characters_not_bytes if {
	# 20 characters, 40 bytes.
	decide(justified("ééééééééééééééééééé!")).effect == "allow"
}
