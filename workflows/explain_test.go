package workflows_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// loadHistory reads the one recorded history whose name starts with prefix.
func loadHistory(t *testing.T, prefix string) *historypb.History {
	t.Helper()
	files, err := filepath.Glob("testdata/histories/" + prefix + "-*.json")
	if err != nil || len(files) != 1 {
		t.Fatalf("recorded history %s: %v %v", prefix, files, err)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := sdkclient.HistoryFromJSON(f, sdkclient.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The recorded run of integration/TestAuditTrailOfApprovalAndCompensation:
// a refused and a counted co-signature, the action, a denied step and the
// compensation, told in order.
func TestExplainRecordedHistory(t *testing.T) {
	h := loadHistory(t, "TestAuditTrailOfApprovalAndCompensation")
	e, err := workflows.ExplainHistory(h.Events, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.End == nil || e.End.State != remediation.StateDenied || e.WorkflowStatus != "Failed" || e.ClosedAt == nil {
		t.Fatalf("end %+v, workflow %s", e.End, e.WorkflowStatus)
	}
	if !e.Audit.Intact || e.Audit.Records != 11 || len(e.Timeline) != 11 {
		t.Errorf("audit %+v, %d timeline entries", e.Audit, len(e.Timeline))
	}
	s0, s1 := e.Steps[0], e.Steps[1]
	if s0.Decision == nil || s0.Decision.Effect != remediation.EffectCosign || s0.CoSignature == nil || s0.CoSignature.Approvers != 1 {
		t.Errorf("step 0 decision %+v, co-signature %+v", s0.Decision, s0.CoSignature)
	}
	if len(s0.Approvals) != 2 || s0.Approvals[0].Outcome != "refused" || s0.Approvals[1].Outcome != "given" || s0.Approvals[1].Approver.ID != "bob" ||
		s0.Approvals[1].Approver.Source != "cli" || s0.Approvals[1].SignedAt == "" || s0.Approvals[1].KeyID != "it" {
		t.Errorf("step 0 approvals %+v", s0.Approvals)
	}
	if s0.Applied == nil || !s0.Applied.Changed || s0.Applied.Before == nil || s0.Applied.After == nil ||
		s0.Applied.Before.Images[0].Image == s0.Applied.After.Images[0].Image {
		t.Errorf("step 0 action %+v", s0.Applied)
	}
	if s0.Verification == nil || !s0.Verification.Passed || s0.State != remediation.StepCompensated {
		t.Errorf("step 0 verification %+v, state %s", s0.Verification, s0.State)
	}
	if s1.Decision == nil || s1.Decision.Effect != remediation.EffectDeny || s1.Applied != nil || s1.State != remediation.StepDenied {
		t.Errorf("step 1 %+v", s1)
	}
	if len(e.Compensations) != 1 || e.Compensations[0].Step != 0 || e.Compensations[0].Outcome != "applied" || !e.Compensations[0].Changed {
		t.Errorf("compensations %+v", e.Compensations)
	}
	for i := 1; i < len(e.Timeline); i++ {
		if e.Timeline[i].At.Before(e.Timeline[i-1].At) || e.Timeline[i].Seq != e.Timeline[i-1].Seq+1 {
			t.Errorf("timeline out of order at %d: %+v after %+v", i, e.Timeline[i], e.Timeline[i-1])
		}
	}
	var b bytes.Buffer
	if err := e.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{"co-signature requested: 1 from oncall-sre", "refused", "approved by bob", "applied: set image of", "undone: set image of", "ended Denied", "chain intact"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// The recorded run of integration/TestAuditWorkerKilledBetweenActionAndRecord
// (before targets were read by a local activity):
// the attempts the history shows, and a chain without gap or duplicate.
func TestExplainRecordedHistoryOfAKilledWorker(t *testing.T) {
	h := loadHistory(t, "v0-TestAuditWorkerKilledBetweenActionAndRecord")
	e, err := workflows.ExplainHistory(h.Events, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.End == nil || e.End.State != remediation.StateCompleted || !e.Audit.Intact || e.Audit.Records != 5 || e.ID == "" {
		t.Fatalf("id %q, end %+v, audit %+v", e.ID, e.End, e.Audit)
	}
	// The action's record: its first delivery died with the worker.
	applied := e.Timeline[2]
	if applied.Type != remediation.AuditActionApplied || applied.Deliveries < 2 || !strings.Contains(applied.Text, "delivered on attempt") {
		t.Errorf("action entry %+v", applied)
	}
	for i, entry := range e.Timeline {
		if i != 2 && entry.Deliveries != 0 {
			t.Errorf("entry %d took %d deliveries", i, entry.Deliveries)
		}
	}
}

func TestExplainRefusesOtherHistories(t *testing.T) {
	if _, err := workflows.ExplainHistory(nil, nil); err == nil {
		t.Error("an empty history was explained")
	}
	h := loadHistory(t, "TestAuditTrailOfApprovalAndCompensation")
	if _, err := workflows.ExplainHistory(h.Events[1:], nil); err == nil {
		t.Error("a history without its start was explained")
	}
}
