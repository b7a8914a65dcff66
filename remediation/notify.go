package remediation

import "time"

// The approval-notification contracts: the workflow asks the notifier (Slack)
// to post a step's co-signature request and to keep that message current.
const (
	// ActivityNotifyApprovers posts the request for co-signature of one step.
	ActivityNotifyApprovers = "reins.slack.NotifyApprovers"
	// ActivityUpdateApprovalMessage rewrites the posted messages after a
	// decision: who approved or denied, buttons gone once decided, outcome.
	ActivityUpdateApprovalMessage = "reins.slack.UpdateApprovalMessage"
)

// ApprovalRequest is everything an approver needs to decide on one step.
type ApprovalRequest struct {
	StepRef
	// Steps is how many steps the plan has.
	Steps int `json:"steps"`
	// Digest is the step's digest: the approval must carry it.
	Digest string `json:"digest"`
	// Run is the workflow run asking: a click on its message counts for
	// this run only.
	Run      string   `json:"run,omitempty"`
	Decision Decision `json:"decision"`
	// Explanation is the plan's reasoning (the step's own is Step.Justification).
	Explanation string `json:"explanation"`
	// Change says what the step would do to the target as it is now
	// ("scale shop/deployment/checkout 3→6"); empty when the target could not be read.
	Change string `json:"change,omitempty"`
	// Compensation says what undoing the step would do.
	Compensation string `json:"compensation"`
	// Group is who is asked: the policy's group, or its escalation group.
	Group     string `json:"group"`
	Escalated bool   `json:"escalated,omitempty"`
	// Needed is how many distinct approvers the policy asks for, Have how
	// many are counted so far.
	Needed int `json:"needed"`
	Have   int `json:"have"`
	// Deadline is when the step is denied for want of co-signers.
	Deadline time.Time `json:"deadline"`
}

// ApprovalMessage is one posted message (Slack channel and timestamp).
type ApprovalMessage struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// NotifyApproversResult lists the messages posted.
type NotifyApproversResult struct {
	Messages []ApprovalMessage `json:"messages,omitempty"`
	// Note says why nothing was posted (e.g. no Slack configured: approve
	// with `reins approve`).
	Note string `json:"note,omitempty"`
}

// ApprovalVote is one approval the workflow received, as the message shows it.
type ApprovalVote struct {
	Approver Approver  `json:"approver"`
	Verdict  Verdict   `json:"verdict"`
	At       time.Time `json:"at"`
	Counted  bool      `json:"counted"`
	// Reason is why it was not counted.
	Reason string `json:"reason,omitempty"`
}

// UpdateApprovalInput rewrites the messages of Request.
type UpdateApprovalInput struct {
	Request  ApprovalRequest   `json:"request"`
	Messages []ApprovalMessage `json:"messages"`
	Votes    []ApprovalVote    `json:"votes,omitempty"`
	// Decided removes the buttons: the step is approved, denied or expired.
	Decided bool `json:"decided,omitempty"`
	// Outcome is one line on what became of the step ("approved by a, b",
	// "denied by x: reason", "expired", "done: image set, rollout verified").
	Outcome string `json:"outcome,omitempty"`
}
