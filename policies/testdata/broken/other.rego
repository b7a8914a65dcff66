package reins.policy

ok if {
	1 ==
}
