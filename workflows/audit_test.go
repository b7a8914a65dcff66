package workflows

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/remediation"
)

// A run with a refused and a counted approval, a credential lease, a failing
// third step and the compensations (the failed step's too: it was pushed
// before acting, in case the action half-happened): exactly these records,
// chained.
func TestAuditTrailOfApprovalAndCompensation(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	plan.Steps = append(plan.Steps, scaleStep("c", 6))
	f.executeErr[2] = temporal.NewNonRetryableApplicationError("patch: invalid", remediation.ErrInvalid, nil)
	f.leases[1] = &remediation.LeaseInfo{LeaseID: "kubernetes/creds/reins-shop/abc", Role: "reins-shop", Namespace: "shop", Revoked: true}
	s := newSigner(t, f, plan)
	env := newEnv(t, f)
	signalAt(env, time.Minute, s.signed(1, "sre-agent", "oncall", remediation.VerdictApprove))
	signalAt(env, 2*time.Minute, s.signed(1, "bob", "oncall", remediation.VerdictApprove))
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, errType := result(t, env)
	if errType != string(remediation.StateRolledBack) {
		t.Fatalf("state %s (%s) %s, want RolledBack", st.State, errType, st.Reason)
	}

	records, types := f.audit(t)
	equal(t, "record types", types, []string{
		remediation.AuditStarted,
		remediation.AuditPolicyDecided, remediation.AuditActionApplied, remediation.AuditVerificationPassed,
		remediation.AuditPolicyDecided, remediation.AuditApprovalRequested, remediation.AuditApprovalNotified, remediation.AuditApprovalRefused, remediation.AuditApprovalGiven,
		remediation.AuditCredentialIssued, remediation.AuditActionApplied, remediation.AuditCredentialRevoked, remediation.AuditVerificationPassed,
		remediation.AuditPolicyDecided, remediation.AuditActionFailed,
		remediation.AuditCompensationApplied, remediation.AuditCompensationApplied, remediation.AuditCompensationApplied,
		remediation.AuditEnded,
	})
	rep := audit.Verify("default-test-workflow-id", "default-test-run-id", records, false)
	if !rep.OK() || rep.End != remediation.StateRolledBack || rep.Records != len(types) {
		t.Fatalf("chain: %s", rep)
	}

	// The records say who, what and why.
	var (
		started  remediation.AuditStartedData
		refused  remediation.AuditApprovalData
		given    remediation.AuditApprovalData
		lease    remediation.AuditCredentialData
		applied  remediation.AuditActionData
		failed   remediation.AuditActionData
		undo2    remediation.AuditCompensationData
		undo1    remediation.AuditCompensationData
		undo0    remediation.AuditCompensationData
		end      remediation.AuditEndedData
		notified remediation.AuditNotifyData
	)
	for i, v := range map[int]any{0: &started, 6: &notified, 7: &refused, 8: &given, 9: &lease, 10: &applied, 14: &failed, 15: &undo2, 16: &undo1, 17: &undo0, 18: &end} {
		rec, err := remediation.ParseAuditRecord(records[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(rec.Data, v); err != nil {
			t.Fatalf("record %d data: %v", i, err)
		}
	}
	if started.Requester.Name != "sre-agent" || started.Explanation != "test plan" || len(started.Steps) != 3 || started.PlanDigest != plan.Digest() ||
		started.Steps[1].Justification == "" {
		t.Errorf("started: %+v", started)
	}
	if notified.Group != "oncall" || len(notified.Messages) != 1 || notified.Messages[0].Channel != "C-oncall" || notified.Step != 1 {
		t.Errorf("notified: %+v", notified)
	}
	if refused.Approver.ID != "sre-agent" || refused.Counted || !contains(refused.Reason, "cannot co-sign their own step") {
		t.Errorf("refused approval: %+v", refused)
	}
	if given.Approver.ID != "bob" || given.Approver.Source != "slack" || !given.Counted || given.KeyID != "gw" || given.Have != 1 || given.Needed != 1 ||
		given.Digest != plan.StepDigest(1) || given.SignedAt == "" {
		t.Errorf("given approval: %+v", given)
	}
	if lease.LeaseID != "kubernetes/creds/reins-shop/abc" || lease.For != "action" || lease.Step != 1 {
		t.Errorf("credential: %+v", lease)
	}
	if applied.Change != "scale shop/deployment/b 3→5" || applied.Before == nil || *applied.Before.Replicas != 3 || !applied.Changed ||
		len(applied.Approvers) != 1 || applied.Approvers[0] != "bob" {
		t.Errorf("applied: %+v", applied)
	}
	if failed.Step != 2 || !contains(failed.Error, "patch: invalid") {
		t.Errorf("failed action: %+v", failed)
	}
	if undo2.Step != 2 || undo1.Step != 1 || undo0.Step != 0 || undo0.Undo != "scale shop/deployment/a back to 3" || !undo0.Changed {
		t.Errorf("compensations: %+v, %+v, %+v", undo2, undo1, undo0)
	}
	if end.State != remediation.StateRolledBack || len(end.Steps) != 3 || end.Steps[0].State != remediation.StepCompensated || end.Steps[2].State != remediation.StepCompensated || !contains(end.Reason, "step 2") {
		t.Errorf("end: %+v", end)
	}
}

// A delivery that fails after the sink stored the record (the worker died
// before it answered) is retried with the same bytes: no gap, no duplicate.
func TestAuditRetryDeliversTheSameRecord(t *testing.T) {
	f := newFakes()
	f.auditFailures[remediation.AuditActionApplied] = 2
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4))})
	st, errType := result(t, env)
	if errType != "" {
		t.Fatalf("state %s (%s)", st.State, errType)
	}
	records, types := f.audit(t)
	equal(t, "record types", types, []string{remediation.AuditStarted, remediation.AuditPolicyDecided,
		remediation.AuditActionApplied, remediation.AuditVerificationPassed, remediation.AuditEnded})
	if f.auditAttempts != len(types)+2 {
		t.Errorf("%d deliveries, want %d (two retries)", f.auditAttempts, len(types)+2)
	}
	if rep := audit.Verify("default-test-workflow-id", "default-test-run-id", records, false); !rep.OK() {
		t.Fatal(rep)
	}
}

// An abort while a co-signer is awaited: the trail records the request, the
// compensation and the end, and is delivered in full although the workflow
// was asked to stop.
func TestAuditTrailOfCancellation(t *testing.T) {
	f := newFakes()
	f.decisions[1] = remediation.Decision{Effect: remediation.EffectCosign, Approvers: 1, Group: "oncall", Risk: remediation.RiskHigh}
	env := newEnv(t, f)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5))})
	if st, errType := result(t, env); errType != "canceled" {
		t.Fatalf("state %s (%s)", st.State, errType)
	}
	records, types := f.audit(t)
	equal(t, "record types", types, []string{remediation.AuditStarted,
		remediation.AuditPolicyDecided, remediation.AuditActionApplied, remediation.AuditVerificationPassed,
		remediation.AuditPolicyDecided, remediation.AuditApprovalRequested, remediation.AuditApprovalNotified,
		remediation.AuditCompensationApplied, remediation.AuditEnded})
	rep := audit.Verify("default-test-workflow-id", "default-test-run-id", records, false)
	if !rep.OK() || rep.End != remediation.StateAborted {
		t.Fatal(rep)
	}
}

// Approval timeouts and escalations are transitions too; an irreversible
// step that was done is recorded as not undone.
func TestAuditTrailOfEscalationExpiryAndIrreversibleStep(t *testing.T) {
	f := newFakes()
	plan := cosignPlan(f, 1)
	plan.Steps[0] = remediation.Step{Action: remediation.ActionDeletePod, Target: remediation.Target{Namespace: "shop", Kind: remediation.KindPod, Name: "p-1"},
		Justification: "the pod is wedged and holds a lock"}
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: plan})
	st, _ := result(t, env)
	if st.State != remediation.StateDenied {
		t.Fatalf("state %s", st.State)
	}
	_, types := f.audit(t)
	equal(t, "record types", types, []string{remediation.AuditStarted,
		remediation.AuditPolicyDecided, remediation.AuditActionApplied, remediation.AuditVerificationPassed,
		remediation.AuditPolicyDecided, remediation.AuditApprovalRequested, remediation.AuditApprovalNotified,
		remediation.AuditApprovalEscalated, remediation.AuditApprovalNotified, remediation.AuditApprovalExpired,
		remediation.AuditCompensationSkipped, remediation.AuditEnded})
}

// A lease the step could not revoke is audited as such, never as revoked.
func TestAuditUnrevokedLease(t *testing.T) {
	f := newFakes()
	f.leases[0] = &remediation.LeaseInfo{LeaseID: "kubernetes/creds/reins-staging/xyz", Role: "reins-staging", Namespace: "shop", Revoked: false}
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4))})
	st, errType := result(t, env)
	if errType != "" || st.State != remediation.StateCompleted {
		t.Fatalf("state %s (%s)", st.State, errType)
	}
	_, types := f.audit(t)
	equal(t, "record types", types, []string{
		remediation.AuditStarted, remediation.AuditPolicyDecided,
		remediation.AuditCredentialIssued, remediation.AuditActionApplied, remediation.AuditCredentialRevokeFailed,
		remediation.AuditVerificationPassed, remediation.AuditEnded,
	})
}

// A failed action and a failed undo whose attempt used a credential (its
// lease in the error's details) record the credential around the failure.
func TestAuditLeaseOfFailures(t *testing.T) {
	f := newFakes()
	lease := func(id string) remediation.LeaseInfo {
		return remediation.LeaseInfo{LeaseID: "kubernetes/creds/reins-shop/" + id, Role: "reins-shop", Namespace: "shop", Revoked: true}
	}
	f.executeErr[1] = temporal.NewNonRetryableApplicationError("patch: forbidden", remediation.ErrForbidden, nil, lease("exec1"))
	f.compensateErr[0] = temporal.NewNonRetryableApplicationError("patch: forbidden", remediation.ErrForbidden, nil, lease("undo0"))
	env := newEnv(t, f)
	env.ExecuteWorkflow(RemediationWorkflowName, RemediationInput{Plan: testPlan(scaleStep("a", 4), scaleStep("b", 5))})
	st, errType := result(t, env)
	if errType != string(remediation.StateNeedsHuman) {
		t.Fatalf("state %s (%s) %s, want NeedsHuman", st.State, errType, st.Reason)
	}
	raws, types := f.audit(t)
	equal(t, "record types", types, []string{
		remediation.AuditStarted,
		remediation.AuditPolicyDecided, remediation.AuditActionApplied, remediation.AuditVerificationPassed,
		remediation.AuditPolicyDecided, remediation.AuditCredentialIssued, remediation.AuditActionFailed, remediation.AuditCredentialRevoked,
		remediation.AuditCompensationApplied, // step 1's undo: nothing to undo, no credential
		remediation.AuditCredentialIssued, remediation.AuditCompensationFailed, remediation.AuditCredentialRevoked,
		remediation.AuditEnded,
	})
	var got []string
	for _, raw := range raws {
		rec, _ := remediation.ParseAuditRecord(raw)
		if rec.Type != remediation.AuditCredentialIssued {
			continue
		}
		var d remediation.AuditCredentialData
		if err := json.Unmarshal(rec.Data, &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %s", d.Step, d.For, d.LeaseID))
	}
	equal(t, "credentials", got, []string{"1 action kubernetes/creds/reins-shop/exec1", "0 compensation kubernetes/creds/reins-shop/undo0"})
}
