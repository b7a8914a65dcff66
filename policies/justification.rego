# Every step says why (data: min_justification_chars).
package reins.policy

deny contains msg if {
	n := count(trim_space(object.get(input, ["step", "justification"], "")))
	n < cfg.min_justification_chars
	msg := sprintf("the justification has %d characters, fewer than the %d required: say why this step, in a sentence", [n, cfg.min_justification_chars])
}
