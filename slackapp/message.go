package slackapp

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/reins-dev/reins/remediation"
)

// MessageOptions is what a message needs beside the request.
type MessageOptions struct {
	// Usergroup is the Slack user group ID (S…) of the request's group; the
	// message mentions it so that its members are notified. "": the group is
	// named in plain text.
	Usergroup string
	// WorkflowURL links to the remediation in the Temporal UI. "": no link.
	WorkflowURL string
}

// Message is a rendered approval message.
type Message struct {
	// Text is the notification's fallback text.
	Text   string
	Blocks []slack.Block
}

// Limits on the parts of a message (bytes), chosen so that the whole
// message stays far below Slack's limits and a click's payload, which
// carries the message, below DefaultMaxBodyBytes.
const (
	maxDescribe     = 500
	maxJustify      = 1500
	maxExplain      = 1500
	maxReasons      = 10
	maxReason       = 300
	maxCompensation = 600
	maxVotes        = 20
	maxVoteLine     = 250
	maxOutcome      = 600
	maxFieldValue   = 300
)

var usergroupRE = regexp.MustCompile(`^S[A-Z0-9]{2,31}$`)

// RequestMessage renders the co-signature request of one step, with its
// Approve and Deny buttons.
func RequestMessage(req remediation.ApprovalRequest, opts MessageOptions) (Message, error) {
	return render(req, nil, false, "", opts)
}

// UpdatedMessage renders the message of in.Request after a decision: the
// votes so far, the buttons gone once in.Decided, and the outcome.
func UpdatedMessage(in remediation.UpdateApprovalInput, opts MessageOptions) (Message, error) {
	return render(in.Request, in.Votes, in.Decided, in.Outcome, opts)
}

func render(req remediation.ApprovalRequest, votes []remediation.ApprovalVote, decided bool, outcome string, opts MessageOptions) (Message, error) {
	var actions *slack.ActionBlock
	if !decided {
		var err error
		if actions, err = buttons(req); err != nil {
			return Message{}, err
		}
	}
	step := fmt.Sprintf("step %d of %d", req.Index+1, req.Steps)
	// The change as the target is now ("3→6"), else the step as planned.
	change := req.Change
	if strings.TrimSpace(change) == "" {
		change = req.Step.Describe()
	}
	describe := mrkdwn(oneLine(change), maxDescribe)
	who := groupMention(req.Group, opts.Usergroup)

	header := "Co-signature needed: " + step
	switch {
	case decided:
		header = "Co-signature: " + step + " — decided"
	case req.Escalated:
		header = "Escalated — co-signature needed: " + step
	}

	summary := fmt.Sprintf("%s, please decide: *%s*\nRemediation `%s` · %s (index %d) · requested by %s",
		who, describe, mrkdwn(req.Remediation, MaxRemediationID), step, req.Index, mrkdwn(oneLine(req.Requester.String()), 200))
	if req.Environment != "" {
		summary += " · environment " + mrkdwn(req.Environment, 100)
	}
	if req.Escalated {
		summary += "\n:arrow_double_up: Escalated: nobody from the first group decided in time."
	}
	if decided {
		summary = fmt.Sprintf("*%s*\nRemediation `%s` · %s (index %d) · requested by %s",
			describe, mrkdwn(req.Remediation, MaxRemediationID), step, req.Index, mrkdwn(oneLine(req.Requester.String()), 200))
	}

	fields := []*slack.TextBlockObject{
		field("Target", "`"+mrkdwn(req.Step.Target.String(), maxFieldValue)+"`"),
		field("Action", "`"+mrkdwn(string(req.Step.Action), maxFieldValue)+"`"),
		field("Parameters", params(req.Step.Params)),
		field("Risk", riskText(req.Decision.Risk)),
		field("Approvals", fmt.Sprintf("%d of %d from %s", req.Have, req.Needed, who)),
	}
	if !req.Deadline.IsZero() {
		fields = append(fields, field("Deadline", slackDate(req.Deadline)))
	}

	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(header, maxHeader), false, false)),
		section(summary),
		slack.NewSectionBlock(nil, fields, nil),
	}
	if j := mrkdwn(req.Step.Justification, maxJustify); j != "" {
		blocks = append(blocks, section("*Why this step*\n"+quote(j)))
	}
	if e := mrkdwn(req.Explanation, maxExplain); e != "" {
		blocks = append(blocks, section("*Agent's reasoning*\n"+quote(e)))
	}
	blocks = append(blocks, section(policyText(req.Decision)))
	undo := "*Undo*: " + mrkdwn(oneLine(req.Compensation), maxCompensation)
	if req.Step.Action.Irreversible() {
		undo = "*Undo*: :warning: none — this action is irreversible"
	} else if strings.TrimSpace(req.Compensation) == "" {
		undo = "*Undo*: " + mrkdwn(string(req.Step.Action), 100) + " is undone by restoring the state captured before the step"
	}
	blocks = append(blocks, section(undo))
	if len(votes) > 0 {
		blocks = append(blocks, section(votesText(votes)))
	}
	if o := mrkdwn(oneLine(outcome), maxOutcome); o != "" {
		blocks = append(blocks, section("*Outcome*: "+o))
	}
	blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, contextText(req, opts.WorkflowURL), false, false)))
	if actions != nil {
		blocks = append(blocks, actions)
	}

	text := fmt.Sprintf("%s: co-signature needed for %s of %s: %s", who, step, mrkdwn(req.Remediation, MaxRemediationID), describe)
	if decided {
		text = fmt.Sprintf("Co-signature of %s of %s: decided", step, mrkdwn(req.Remediation, MaxRemediationID))
	}
	return Message{Text: cut(text, maxFallback), Blocks: blocks}, nil
}

// buttons are Approve and Deny, each carrying the step's ButtonValue.
func buttons(req remediation.ApprovalRequest) (*slack.ActionBlock, error) {
	value, err := ButtonValue{Remediation: req.Remediation, Run: req.Run, Step: req.Index, Digest: req.Digest}.Encode()
	if err != nil {
		return nil, fmt.Errorf("approval message for %s step %d: %w", req.Remediation, req.Index, err)
	}
	approve := slack.NewButtonBlockElement(ActionApprove, value,
		slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary)
	confirm := slack.NewConfirmationBlockObject(
		slack.NewTextBlockObject(slack.PlainTextType, plain("Deny step "+strconv.Itoa(req.Index+1)+"?", maxConfirmTitle), false, false),
		slack.NewTextBlockObject(slack.MarkdownType, cut("Denying ends the remediation: the steps already done are undone. *"+
			mrkdwn(oneLine(req.Step.Describe()), 150)+"* will not run.", maxConfirmText), false, false),
		slack.NewTextBlockObject(slack.PlainTextType, plain("Deny", maxConfirmBtn), false, false),
		slack.NewTextBlockObject(slack.PlainTextType, plain("Cancel", maxConfirmBtn), false, false),
	).WithStyle(slack.StyleDanger)
	deny := slack.NewButtonBlockElement(ActionDeny, value,
		slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger).WithConfirm(confirm)
	return slack.NewActionBlock(BlockDecide, approve, deny), nil
}

// groupMention mentions the Slack user group, or names the group.
func groupMention(group, usergroup string) string {
	if usergroupRE.MatchString(usergroup) {
		return "<!subteam^" + usergroup + ">"
	}
	if group == "" {
		return "approvers"
	}
	return "group *" + mrkdwn(oneLine(group), 100) + "*"
}

func section(text string) *slack.SectionBlock {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, cut(text, maxSection), false, false), nil, nil)
}

func field(name, value string) *slack.TextBlockObject {
	if value == "" {
		value = "—"
	}
	return slack.NewTextBlockObject(slack.MarkdownType, cut("*"+name+"*\n"+value, maxField), false, false)
}

func params(p remediation.Params) string {
	var out []string
	if p.Replicas != nil {
		out = append(out, "replicas `"+strconv.Itoa(int(*p.Replicas))+"`")
	}
	if p.Container != "" {
		out = append(out, "container `"+mrkdwn(p.Container, 100)+"`")
	}
	if p.Image != "" {
		out = append(out, "image `"+mrkdwn(p.Image, maxFieldValue)+"`")
	}
	return strings.Join(out, "\n")
}

func riskText(r remediation.Risk) string {
	switch r {
	case remediation.RiskCritical:
		return ":red_circle: *critical*"
	case remediation.RiskHigh:
		return ":large_orange_circle: *high*"
	case remediation.RiskMedium:
		return ":large_yellow_circle: medium"
	case remediation.RiskLow:
		return ":large_green_circle: low"
	}
	return mrkdwn(string(r), 50)
}

func policyText(d remediation.Decision) string {
	var b strings.Builder
	b.WriteString("*Policy*: " + mrkdwn(string(d.Effect), 20))
	if d.Bundle != "" {
		b.WriteString(" (bundle `" + mrkdwn(shortDigest(d.Bundle), 20) + "`)")
	}
	for i, r := range d.Reasons {
		if i == maxReasons {
			fmt.Fprintf(&b, "\n• … and %d more (see the workflow)", len(d.Reasons)-maxReasons)
			break
		}
		b.WriteString("\n• " + mrkdwn(oneLine(r), maxReason))
	}
	return b.String()
}

func votesText(votes []remediation.ApprovalVote) string {
	var b strings.Builder
	b.WriteString("*Decisions*")
	for i, v := range votes {
		if i == maxVotes {
			fmt.Fprintf(&b, "\n… and %d more (see the workflow)", len(votes)-maxVotes)
			break
		}
		who := mrkdwn(oneLine(v.Approver.ID), 120)
		if v.Approver.Name != "" {
			who = mrkdwn(oneLine(v.Approver.Name), 80) + " (" + who + ")"
		}
		var line string
		switch {
		case !v.Counted:
			line = ":warning: " + who + " " + verdictPast(v.Verdict) + ", not counted: " + mrkdwn(oneLine(v.Reason), maxVoteLine)
		case v.Verdict == remediation.VerdictDeny:
			line = ":no_entry: *" + who + "* denied"
		default:
			line = ":white_check_mark: *" + who + "* approved"
		}
		if !v.At.IsZero() {
			line += " · " + slackTime(v.At)
		}
		if v.Approver.Source != "" {
			line += " · via " + mrkdwn(v.Approver.Source, 20)
		}
		b.WriteString("\n" + cut(line, maxVoteLine*2))
	}
	return b.String()
}

func verdictPast(v remediation.Verdict) string {
	switch v {
	case remediation.VerdictApprove:
		return "approved"
	case remediation.VerdictDeny:
		return "denied"
	}
	return "voted " + mrkdwn(string(v), 20)
}

func contextText(req remediation.ApprovalRequest, workflowURL string) string {
	parts := []string{"Step digest `" + shortDigest(req.Digest) + "`"}
	if link := linkURL(workflowURL); link != "" {
		parts = append(parts, "<"+link+"|Open in Temporal UI>")
	}
	parts = append(parts, "Without Slack: `reins approve "+mrkdwn(req.Remediation, MaxRemediationID)+" --step "+strconv.Itoa(req.Index)+"`")
	return cut(strings.Join(parts, " · "), maxContext)
}

// linkURL returns u safe inside <u|label>, or "" when it is not an http(s) URL.
func linkURL(u string) string {
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return ""
	}
	u = strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E", " ", "%20", "&", "&amp;").Replace(clean(oneLine(u)))
	if len(u) > 1000 {
		return ""
	}
	return u
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// slackDate renders t in each reader's time zone, with a UTC fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

func slackTime(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{time_secs}|%s>", t.Unix(), t.UTC().Format("15:04:05 UTC"))
}
