package slackapp

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/reins-dev/reins/remediation"
)

func testRequest() remediation.ApprovalRequest {
	six := int32(6)
	return remediation.ApprovalRequest{
		StepRef: remediation.StepRef{
			Remediation: "reins-am-1",
			Index:       1,
			Step: remediation.Step{
				Action:        remediation.ActionScale,
				Target:        remediation.Target{Namespace: "shop", Kind: "Deployment", Name: "checkout"},
				Params:        remediation.Params{Replicas: &six},
				Justification: "p99 latency is 4s; more replicas absorb the load",
			},
			Requester:   remediation.Requester{Kind: "agent", Name: "sre-bot", Owner: "bob@example.com"},
			Environment: "prod",
		},
		Steps:        3,
		Digest:       testDigest,
		Run:          testRun,
		Decision:     remediation.Decision{Effect: "cosign", Approvers: 2, Group: "sre", Risk: "high", Reasons: []string{"prod scale above 5 needs two humans"}, Bundle: "feedfacecafebeef0011"},
		Explanation:  "checkout is saturated since the 14:00 deploy",
		Compensation: "scale shop/deployment/checkout back to 3",
		Change:       "scale shop/deployment/checkout 3→6",
		Group:        "sre",
		Needed:       2,
		Have:         0,
		Deadline:     time.Date(2025, 1, 2, 15, 4, 0, 0, time.UTC),
	}
}

// texts returns every text of the blocks (JSON-decoded), by kind.
func texts(t *testing.T, blocks []slack.Block) (all string, buttons []*slack.ButtonBlockElement) {
	t.Helper()
	var b strings.Builder
	for _, blk := range blocks {
		switch x := blk.(type) {
		case *slack.HeaderBlock:
			b.WriteString(x.Text.Text + "\n")
		case *slack.SectionBlock:
			if x.Text != nil {
				b.WriteString(x.Text.Text + "\n")
			}
			for _, f := range x.Fields {
				b.WriteString(f.Text + "\n")
			}
		case *slack.ContextBlock:
			for _, e := range x.ContextElements.Elements {
				b.WriteString(e.(*slack.TextBlockObject).Text + "\n")
			}
		case *slack.ActionBlock:
			for _, e := range x.Elements.ElementSet {
				buttons = append(buttons, e.(*slack.ButtonBlockElement))
			}
		default:
			t.Fatalf("unexpected block %T", blk)
		}
	}
	return b.String(), buttons
}

func TestRequestMessage(t *testing.T) {
	req := testRequest()
	msg, err := RequestMessage(req, MessageOptions{Usergroup: "S0SRE", WorkflowURL: "http://localhost:8233/namespaces/default/workflows/reins-am-1"})
	if err != nil {
		t.Fatal(err)
	}
	all, buttons := texts(t, msg.Blocks)
	for _, want := range []string{
		"Co-signature needed: step 2 of 3",
		"<!subteam^S0SRE>",
		"*scale shop/deployment/checkout 3→6*",
		"`reins-am-1`", "(index 1)", "agent:sre-bot", "environment prod",
		"`shop/deployment/checkout`", "`kubernetes.scale`", "replicas `6`",
		"*high*", "0 of 2 from <!subteam^S0SRE>", "<!date^1735830240^",
		"> p99 latency is 4s", "> checkout is saturated since the 14:00 deploy",
		"prod scale above 5 needs two humans", "bundle `feedfacecafe`",
		"*Undo*: scale shop/deployment/checkout back to 3",
		"<http://localhost:8233/namespaces/default/workflows/reins-am-1|Open in Temporal UI>",
		"`reins approve reins-am-1 --step 1`", "Step digest `0123456789ab`",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("message lacks %q:\n%s", want, all)
		}
	}
	if !strings.Contains(msg.Text, "<!subteam^S0SRE>") || !strings.Contains(msg.Text, "step 2 of 3") {
		t.Errorf("fallback text %q", msg.Text)
	}
	if len(buttons) != 2 {
		t.Fatalf("%d buttons", len(buttons))
	}
	approve, deny := buttons[0], buttons[1]
	if approve.ActionID != ActionApprove || approve.Style != slack.StylePrimary || approve.Confirm != nil {
		t.Errorf("approve button %+v", approve)
	}
	if deny.ActionID != ActionDeny || deny.Style != slack.StyleDanger || deny.Confirm == nil || deny.Confirm.Style != slack.StyleDanger {
		t.Errorf("deny button %+v", deny)
	}
	for _, b := range buttons {
		v, err := ParseButtonValue(b.Value)
		if err != nil || v != (ButtonValue{Remediation: "reins-am-1", Run: testRun, Step: 1, Digest: testDigest}) {
			t.Errorf("button %s value %q: %+v %v", b.ActionID, b.Value, v, err)
		}
	}
	// Without a user group the group is named; escalation says so.
	req.Escalated, req.Group, req.Change = true, "sre-leads", ""
	msg, err = RequestMessage(req, MessageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all, _ = texts(t, msg.Blocks)
	for _, want := range []string{"Escalated — co-signature needed", "group *sre-leads*", "Escalated: nobody", "*scale shop/deployment/checkout to 6*"} {
		if !strings.Contains(all, want) {
			t.Errorf("escalated message lacks %q", want)
		}
	}
	if strings.Contains(all, "Temporal UI") || strings.Contains(all, "subteam") {
		t.Errorf("message links or mentions what it was not given:\n%s", all)
	}
}

func TestUpdatedMessage(t *testing.T) {
	req := testRequest()
	at := time.Date(2025, 1, 2, 14, 10, 0, 0, time.UTC)
	votes := []remediation.ApprovalVote{
		{Approver: remediation.Approver{ID: "alice@example.com", Name: "Alice", Source: "slack"}, Verdict: "approve", At: at, Counted: true},
		{Approver: remediation.Approver{ID: "bob@example.com", Source: "slack"}, Verdict: "approve", At: at, Reason: "bob@example.com owns the requesting agent"},
		{Approver: remediation.Approver{ID: "carol", Source: "cli"}, Verdict: "approve", At: at, Counted: true},
	}
	req.Have = 1
	msg, err := UpdatedMessage(remediation.UpdateApprovalInput{Request: req, Votes: votes[:2]}, MessageOptions{Usergroup: "S0SRE"})
	if err != nil {
		t.Fatal(err)
	}
	all, buttons := texts(t, msg.Blocks)
	if len(buttons) != 2 {
		t.Errorf("undecided update has %d buttons", len(buttons))
	}
	for _, want := range []string{"1 of 2", ":white_check_mark: *Alice (alice@example.com)* approved", "via slack",
		":warning: bob@example.com approved, not counted: bob@example.com owns the requesting agent"} {
		if !strings.Contains(all, want) {
			t.Errorf("update lacks %q:\n%s", want, all)
		}
	}
	req.Have = 2
	msg, err = UpdatedMessage(remediation.UpdateApprovalInput{Request: req, Votes: votes, Decided: true, Outcome: "done: scaled to 6, rollout verified"}, MessageOptions{Usergroup: "S0SRE"})
	if err != nil {
		t.Fatal(err)
	}
	all, buttons = texts(t, msg.Blocks)
	if len(buttons) != 0 {
		t.Errorf("decided message still has %d buttons", len(buttons))
	}
	for _, want := range []string{"step 2 of 3 — decided", "*Outcome*: done: scaled to 6, rollout verified", "*carol* approved", "via cli"} {
		if !strings.Contains(all, want) {
			t.Errorf("decided message lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "please decide") {
		t.Error("decided message still asks to decide")
	}
	deny := []remediation.ApprovalVote{{Approver: remediation.Approver{ID: "dave@example.com"}, Verdict: "deny", Counted: true}}
	msg, _ = UpdatedMessage(remediation.UpdateApprovalInput{Request: req, Votes: deny, Decided: true, Outcome: "denied by dave@example.com"}, MessageOptions{})
	if all, _ = texts(t, msg.Blocks); !strings.Contains(all, ":no_entry: *dave@example.com* denied") {
		t.Errorf("deny vote not shown:\n%s", all)
	}
}

// An agent's text cannot mention anyone, disguise a link or break out of
// its quote.
func TestMessageEscapesAgentText(t *testing.T) {
	req := testRequest()
	req.Step.Justification = "<!channel> please <https://evil.example|click Approve> & trust me\n> fake quote"
	req.Explanation = "<!subteam^S0ADMIN> <@U0BOSS> \u202eevil\u202c \x00\x07"
	req.Decision.Reasons = []string{"<!here>"}
	req.Compensation = "<!everyone>"
	req.Requester.Name = "<!channel>"
	msg, err := RequestMessage(req, MessageOptions{Usergroup: "S0SRE"})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := texts(t, msg.Blocks)
	for _, bad := range []string{"<!channel>", "<https://evil", "<!subteam^S0ADMIN>", "<@U0BOSS>", "<!here>", "<!everyone>", "\u202e", "\x00", "\x07"} {
		if strings.Contains(all, bad) || strings.Contains(msg.Text, bad) {
			t.Errorf("agent text %q reached the message unescaped", bad)
		}
	}
	if !strings.Contains(all, "&lt;!channel&gt; please &lt;https://evil.example|click Approve&gt; &amp; trust me\n> &gt; fake quote") {
		t.Errorf("justification not escaped and quoted:\n%s", all)
	}
	// A usergroup that is not an ID is not trusted as one.
	msg, _ = RequestMessage(req, MessageOptions{Usergroup: "S0X> <!channel"})
	if all, _ := texts(t, msg.Blocks); strings.Contains(all, "<!channel") {
		t.Error("a bad usergroup ID reached the message")
	}
}

func TestMessageLimits(t *testing.T) {
	req := testRequest()
	huge := strings.Repeat("é<&", 20000) // multi-byte and escaped characters
	req.Step.Justification, req.Explanation, req.Compensation = huge, huge, huge
	req.Step.Params.Image = huge
	req.Step.Params.Container = huge
	req.Change = huge
	req.Environment = huge
	req.Requester.Name = huge
	req.Group = huge
	req.Remediation = "a" + strings.Repeat("b", MaxRemediationID-1)
	for range 40 {
		req.Decision.Reasons = append(req.Decision.Reasons, huge)
	}
	var votes []remediation.ApprovalVote
	for range 40 {
		votes = append(votes, remediation.ApprovalVote{Approver: remediation.Approver{ID: huge, Name: huge, Source: huge}, Verdict: "deny", Reason: huge, At: time.Now()})
	}
	msg, err := UpdatedMessage(remediation.UpdateApprovalInput{Request: req, Votes: votes, Outcome: huge}, MessageOptions{WorkflowURL: "https://ui.example/" + huge})
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Blocks) > maxBlocks {
		t.Fatalf("%d blocks", len(msg.Blocks))
	}
	check := func(what, s string, max int) {
		if len(s) > max || !utf8.ValidString(s) {
			t.Errorf("%s: %d bytes (max %d), valid UTF-8 %v", what, len(s), max, utf8.ValidString(s))
		}
	}
	check("fallback", msg.Text, maxFallback)
	for _, blk := range msg.Blocks {
		switch x := blk.(type) {
		case *slack.HeaderBlock:
			check("header", x.Text.Text, maxHeader)
		case *slack.SectionBlock:
			if x.Text != nil {
				check("section", x.Text.Text, maxSection)
			}
			if len(x.Fields) > maxFields {
				t.Errorf("%d fields", len(x.Fields))
			}
			for _, f := range x.Fields {
				check("field", f.Text, maxField)
			}
		case *slack.ContextBlock:
			for _, e := range x.ContextElements.Elements {
				check("context", e.(*slack.TextBlockObject).Text, maxContext)
			}
		case *slack.ActionBlock:
			for _, e := range x.Elements.ElementSet {
				b := e.(*slack.ButtonBlockElement)
				check("button", b.Text.Text, maxButtonText)
				check("value", b.Value, 2000)
				if b.Confirm != nil {
					check("confirm title", b.Confirm.Title.Text, maxConfirmTitle)
					check("confirm text", b.Confirm.Text.Text, maxConfirmText)
				}
			}
		}
	}
	// A click on the largest message still fits the endpoint's body limit:
	// Slack's payload carries the message, and the form encodes it.
	raw, err := json.Marshal(msg.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	p := click()
	p["message"] = map[string]any{"type": "message", "ts": "1.2", "text": msg.Text, "blocks": json.RawMessage(raw)}
	b, _ := json.Marshal(p)
	body := url.Values{"payload": {string(b)}}.Encode()
	t.Logf("a click on the largest message: %d bytes", len(body))
	if len(body) > DefaultMaxBodyBytes*3/4 {
		t.Fatalf("a click on the largest message is %d bytes; the limit is %d", len(body), DefaultMaxBodyBytes)
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 8, "abcde…"},
		{"ééééé", 8, "éé…"},
		{"abc&amp;def", 9, "abc…"},
		{"abc&amp;def", 11, "abc&amp;def"},
		{"abc&lt;d", 7, "abc…"},
	} {
		if got := cut(c.in, c.max); got != c.want || len(got) > c.max {
			t.Errorf("cut(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestMessageNeedsAValidButton(t *testing.T) {
	req := testRequest()
	req.Digest = "not-a-digest"
	if _, err := RequestMessage(req, MessageOptions{}); err == nil {
		t.Fatal("a message with an unusable button value was rendered")
	}
	// Decided: no buttons, so nothing to bind.
	if _, err := UpdatedMessage(remediation.UpdateApprovalInput{Request: req, Decided: true}, MessageOptions{}); err != nil {
		t.Fatalf("decided message: %v", err)
	}
}
