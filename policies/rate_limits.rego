# Rate limits from history (input.history counts the window_seconds before the
# step). data: rate_limits
#   agent_actions_cosign_over   an agent with more actions than this needs co-signers
#   agent_actions_deny_over     an agent with more actions than this is denied
#   agent_denials_deny_over     an agent with more denied steps than this is denied
#   target_actions_cosign_over  a target changed more often than this needs co-signers
#   cosign_approvers            how many co-signers the limits above ask for
package reins.policy

rate_limit_approvers := object.get(cfg.rate_limits, "cosign_approvers", 1)

deny contains msg if {
	input.requester.kind == "agent"
	input.history.requester_denials > cfg.rate_limits.agent_denials_deny_over
	msg := sprintf("agent %q had %d steps denied in the last %d seconds, more than %d: a human must look at it before it acts again", [requester_name, input.history.requester_denials, window, cfg.rate_limits.agent_denials_deny_over])
}

deny contains msg if {
	input.requester.kind == "agent"
	input.history.requester_actions > cfg.rate_limits.agent_actions_deny_over
	msg := sprintf("agent %q took %d actions in the last %d seconds, more than %d: it is denied until the window passes", [requester_name, input.history.requester_actions, window, cfg.rate_limits.agent_actions_deny_over])
}

cosign contains {"approvers": rate_limit_approvers, "reason": msg} if {
	input.requester.kind == "agent"
	input.history.requester_actions > cfg.rate_limits.agent_actions_cosign_over
	msg := sprintf("agent %q took %d actions in the last %d seconds, more than %d: a human must co-sign", [requester_name, input.history.requester_actions, window, cfg.rate_limits.agent_actions_cosign_over])
}

cosign contains {"approvers": rate_limit_approvers, "reason": msg} if {
	input.history.target_actions > cfg.rate_limits.target_actions_cosign_over
	msg := sprintf("%s was changed %d times in the last %d seconds, more than %d: a human must co-sign that this is not flapping", [target, input.history.target_actions, window, cfg.rate_limits.target_actions_cosign_over])
}

notes contains "skipped the rate limits: no history (input.history)" if object.get(input, "history", false) == false
