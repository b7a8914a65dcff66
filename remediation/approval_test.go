package remediation

import (
	"strings"
	"testing"
)

// Every reason an approval does not count, and identities compared without
// regard to case: the requester, the agent's owner and an approver already
// counted are the same people however a config or Slack spells them.
func TestApprovalRuleCheck(t *testing.T) {
	rule := ApprovalRule{
		Remediation: "r1", Run: "run-2", StepDigest: "d1",
		Requester: Requester{Kind: RequesterAgent, Name: "sre-agent", Owner: "Dana@Example.com"},
		Groups:    []string{"oncall-sre"},
		Counted:   []string{"alice@example.com"},
	}
	ok := Approval{Remediation: "r1", Run: "run-2", StepDigest: "d1", Approver: Approver{ID: "bob@example.com"}, Group: "oncall-sre", Verdict: VerdictApprove}
	if why := rule.Check(ok); why != "" {
		t.Fatalf("a valid approval does not count: %s", why)
	}
	for _, c := range []struct {
		name   string
		change func(*Approval)
		want   string
	}{
		{"other remediation", func(a *Approval) { a.Remediation = "r2" }, `for remediation "r2"`},
		{"earlier run", func(a *Approval) { a.Run = "run-1" }, `for run "run-1" of this remediation, not this run`},
		{"no run", func(a *Approval) { a.Run = "" }, `for run "" of this remediation`},
		{"other step", func(a *Approval) { a.StepDigest = "d2" }, "for another step"},
		{"bad verdict", func(a *Approval) { a.Verdict = "maybe" }, "neither approve nor deny"},
		{"no identity", func(a *Approval) { a.Approver.ID = "" }, "no identity"},
		{"the requester", func(a *Approval) { a.Approver.ID = "SRE-Agent" }, "the requester SRE-Agent cannot co-sign"},
		{"the owner", func(a *Approval) { a.Approver.ID = "dana@example.com" }, "owns the requesting agent sre-agent"},
		{"other group", func(a *Approval) { a.Group = "sre-leads" }, `group "sre-leads" may not co-sign`},
		{"no group", func(a *Approval) { a.Group = "" }, `group "" may not co-sign`},
		{"counted", func(a *Approval) { a.Approver.ID = "Alice@Example.COM" }, "already counted"},
	} {
		a := ok
		c.change(&a)
		if why := rule.Check(a); !strings.Contains(why, c.want) {
			t.Errorf("%s: %q, want a reason containing %q", c.name, why, c.want)
		}
	}
	// A rule without an owner excludes nobody as owner.
	rule.Requester.Owner = ""
	if why := rule.Check(ok); why != "" {
		t.Errorf("no owner: %s", why)
	}
}

func TestSameIdentity(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"dana@example.com", "Dana@Example.com", true},
		{"U0ALICE", "u0alice", true},
		{"dana@example.com", "dan@example.com", false},
		{"", "", false},
		{"", "dana", false},
	} {
		if got := SameIdentity(c.a, c.b); got != c.want {
			t.Errorf("SameIdentity(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
