package remediation

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// derivedIDRE is the shape of every ID WorkflowID derives.
var derivedIDRE = regexp.MustCompile(`^reins-[A-Za-z0-9._-]*-[0-9a-f]{16}$`)

func TestWorkflowIDIsReadableAndBounded(t *testing.T) {
	p := Plan{Incident: Incident{Source: "alertmanager", Fingerprint: "4f1c2a"}}
	if got, want := p.WorkflowID(), "reins-alertmanager-4f1c2a-"; !strings.HasPrefix(got, want) || !derivedIDRE.MatchString(got) {
		t.Errorf("WorkflowID %q, want %q followed by 16 hex digits", got, want)
	}
	p.ID = "it-remediation-1"
	if got := p.WorkflowID(); got != "it-remediation-1" {
		t.Errorf("a plan's own ID: %q", got)
	}
	long := Plan{Incident: Incident{Source: strings.Repeat("s", 5000), Fingerprint: strings.Repeat("<", 5000)}}
	if id := long.WorkflowID(); len(id) > MaxDerivedIDBytes || !derivedIDRE.MatchString(id) {
		t.Errorf("an ID of long parts is %d bytes: %q", len(id), id)
	}
	if bad := idErrors(long.WorkflowID()); bad != nil {
		t.Errorf("a derived ID is not a valid plan ID: %v", bad)
	}
}

// Incidents that read alike once their parts are made readable, cut, or
// split differently at '-' have different IDs.
func TestWorkflowIDsDoNotCollide(t *testing.T) {
	pairs := [][2]Incident{
		{{Source: "shop", Fingerprint: "restart-4f1c"}, {Source: "shop-restart", Fingerprint: "4f1c"}},
		{{Source: "am", Fingerprint: "a:b"}, {Source: "am", Fingerprint: "a_b"}},
		{{Source: "am", Fingerprint: "a b"}, {Source: "am", Fingerprint: "a\x00b"}},
		{{Source: "am", Fingerprint: strings.Repeat("f", 64) + "1"}, {Source: "am", Fingerprint: strings.Repeat("f", 64) + "2"}},
		{{Source: "ab", Fingerprint: "c"}, {Source: "a", Fingerprint: "bc"}},
	}
	for _, pr := range pairs {
		a, b := Plan{Incident: pr[0]}, Plan{Incident: pr[1]}
		if a.WorkflowID() == b.WorkflowID() {
			t.Errorf("incidents %+v and %+v share the ID %s", pr[0], pr[1], a.WorkflowID())
		}
		a.Requester, b.Requester = Requester{Kind: RequesterAgent, Name: "bot"}, Requester{Kind: RequesterAgent, Name: "bot"}
		if a.ClientWorkflowID() == b.ClientWorkflowID() {
			t.Errorf("one client's incidents %+v and %+v share the ID %s", pr[0], pr[1], a.ClientWorkflowID())
		}
	}
	// The same incident keeps its ID: duplicates join.
	if a, b := (Plan{Incident: pairs[0][0]}), (Plan{Incident: pairs[0][0], Explanation: "again"}); a.WorkflowID() != b.WorkflowID() {
		t.Errorf("one incident, two IDs: %s and %s", a.WorkflowID(), b.WorkflowID())
	}
}

// A client's derived ID is its own: never the intake's, never another
// client's, the same for its every proposal of one incident.
func TestClientWorkflowIDIsScopedToTheClient(t *testing.T) {
	inc := Incident{Source: "alertmanager", Fingerprint: "4f1c2a"}
	bot := Plan{Incident: inc, Requester: Requester{Kind: RequesterAgent, Name: "sre-bot", Owner: "alice"}}
	id := bot.ClientWorkflowID()
	if !strings.HasPrefix(id, "agent:sre-bot:alertmanager-4f1c2a-") || len(id) != len("agent:sre-bot:alertmanager-4f1c2a-")+16 {
		t.Errorf("client ID %q", id)
	}
	if !IsDerivedWorkflowID(id) || id == (Plan{Incident: inc}).WorkflowID() {
		t.Errorf("client ID %q is in the intake's space, or not in a derived one", id)
	}
	again := bot
	again.Explanation = "a second proposal"
	if again.ClientWorkflowID() != id {
		t.Error("two proposals of one client for one incident have different IDs")
	}
	others := []Requester{
		{Kind: RequesterHuman, Name: "sre-bot"},
		{Kind: RequesterAgent, Name: "sre_bot"},
		{Kind: RequesterAgent, Name: "sre-bot:alertmanager"},
	}
	for _, r := range others {
		o := Plan{Incident: inc, Requester: r}
		if o.ClientWorkflowID() == id {
			t.Errorf("requester %+v takes %+v's ID %s", r, bot.Requester, id)
		}
	}
	// An agent naming its incident after a trigger gets its own ID, not the trigger's.
	trigger := Plan{Incident: Incident{Source: "replicas-mismatch", Fingerprint: "4f1c"}}
	squat := trigger
	squat.Requester = Requester{Kind: RequesterAgent, Name: "mallory"}
	if squat.ClientWorkflowID() == trigger.WorkflowID() {
		t.Errorf("an agent takes the intake's ID %s", trigger.WorkflowID())
	}
	long := Plan{Incident: Incident{Source: strings.Repeat("s", 300), Fingerprint: strings.Repeat("f", 300)},
		Requester: Requester{Kind: RequesterAgent, Name: strings.Repeat("n", 100)}}
	lid := long.ClientWorkflowID()
	if len(lid) > MaxDerivedIDBytes || !strings.HasPrefix(lid, "agent:"+strings.Repeat("n", 100)+":s") || !strings.Contains(lid, "-ff") {
		t.Errorf("a long client ID (%d bytes): %q", len(lid), lid)
	}
	long.Requester.Name = strings.Repeat("n", 90) + "@example.com"
	if bad := idErrors(long.ClientWorkflowID()); bad != nil {
		t.Errorf("a client ID is not a valid plan ID: %v", bad)
	}
}

func TestIsDerivedWorkflowID(t *testing.T) {
	for id, want := range map[string]bool{
		"reins-shop-4f1c-0123456789abcdef": true,
		"agent:bot:x":                      true,
		"human:alice:x":                    true,
		"it-remediation-1":                 false,
		"Reins-x":                          false,
		"agents:x":                         false,
		"fix/checkout:1":                   false,
	} {
		if got := IsDerivedWorkflowID(id); got != want {
			t.Errorf("IsDerivedWorkflowID(%q) = %v, want %v", id, got, want)
		}
	}
}

// idErrors are Validate's errors about id as a plan's ID.
func idErrors(id string) []FieldError {
	var verr *ValidationError
	if !errors.As(Plan{ID: id}.Validate(), &verr) {
		return nil
	}
	var out []FieldError
	for _, fe := range verr.Errors {
		if fe.Field == "id" {
			out = append(out, fe)
		}
	}
	return out
}
