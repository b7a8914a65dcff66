//go:build integration

package integration

import (
	"context"
	"testing"
	"time"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workflows"
)

// Security invariant 4, read from Vault's own audit log: a step's credential
// is minted only once the step is allowed or co-signed. A step awaiting its
// co-signer, and then denied, never gets one; the same step co-signed gets
// exactly one, for its namespace.
func TestNoCredentialBeforeTheStepIsAllowed(t *testing.T) {
	w := startVaultWorker(t, vaultWorkerConfig(""))
	ns := envNamespace(t, "shop-mint", "production")
	deployment(t, ns, "checkout", 2, "registry.example/checkout:v1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The default bundle asks one co-signer for a production set-image.
	newPlan := func() remediation.Plan {
		p := plan("production", step(remediation.ActionSetImage, remediation.KindDeployment, ns, "checkout",
			remediation.Params{Container: "app", Image: "registry.example/checkout:v2"}))
		p.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: "alice"}
		return p
	}
	decide := func(p remediation.Plan, verdict remediation.Verdict) workflows.Status {
		t.Helper()
		run, st := w.startAwaiting(t, ctx, p, 0)
		if n := len(mintedIn(t, ns)); n != 0 {
			t.Fatalf("%d credentials minted for %s while its step awaits a co-signer", n, ns)
		}
		a := remediation.Approval{Remediation: run.GetID(), Run: run.GetRunID(), StepDigest: st.Steps[0].Digest, Group: st.Steps[0].Decision.Group,
			Approver: remediation.Approver{ID: "bob", Source: "cli"}, Verdict: verdict, At: time.Now().UTC()}
		if err := workflows.Approve(ctx, stack.client, a.Sign("it", w.signer)); err != nil {
			t.Fatal(err)
		}
		st, err := workflows.Result(ctx, run)
		if err != nil && st.State == "" {
			t.Fatal(err)
		}
		return st
	}

	st := decide(newPlan(), remediation.VerdictDeny)
	wantState(t, st, remediation.StateDenied)
	if n := len(mintedIn(t, ns)); n != 0 {
		t.Fatalf("%d credentials minted for a step its co-signer denied", n)
	}
	if img := specOf(getDeployment(t, ns, "checkout")).Images[0]; img != "registry.example/checkout:v1" {
		t.Fatalf("image %s after the deny", img)
	}

	st = decide(newPlan(), remediation.VerdictApprove)
	wantState(t, st, remediation.StateCompleted)
	minted := mintedIn(t, ns)
	if len(minted) != 1 || minted[0].Role != "reins-production" {
		t.Fatalf("minted %+v once co-signed, want one credential of role reins-production", minted)
	}
	deadEverywhere(t, minted[0].Token, ns)
}
