package activities

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/remediation"
)

func TestKubeErrorClassification(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	cases := []struct {
		name      string
		err       error
		wantType  string // "" = retryable
		retryable bool
	}{
		{"forbidden", apierrors.NewForbidden(gr, "web", errors.New("no")), remediation.ErrForbidden, false},
		{"unauthorized", apierrors.NewUnauthorized("expired"), remediation.ErrForbidden, false},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", nil), remediation.ErrInvalid, false},
		{"bad request", apierrors.NewBadRequest("bad patch"), remediation.ErrInvalid, false},
		{"not found", apierrors.NewNotFound(gr, "web"), remediation.ErrNotFound, false},
		{"conflict", apierrors.NewConflict(gr, "web", errors.New("changed")), "", true},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), "", true},
		{"server timeout", apierrors.NewServerTimeout(gr, "patch", 1), "", true},
		{"internal", apierrors.NewInternalError(errors.New("etcd")), "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := kubeError("patch shop/deployment/web", c.err)
			var appErr *temporal.ApplicationError
			if c.retryable {
				if errors.As(err, &appErr) && appErr.NonRetryable() {
					t.Fatalf("%v is final, want retryable", err)
				}
				if !errors.Is(err, c.err) {
					t.Errorf("the API error is not wrapped: %v", err)
				}
				return
			}
			if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != c.wantType {
				t.Fatalf("%v: want a non-retryable %s", err, c.wantType)
			}
		})
	}
	if kubeError("x", nil) != nil {
		t.Error("nil error became non-nil")
	}
}

func TestSameObjectRefusesNamesakes(t *testing.T) {
	s := remediation.Step{Target: remediation.Target{Namespace: "shop", Kind: "Deployment", Name: "web"}}
	before := remediation.Snapshot{Exists: true, UID: "u1"}
	if err := sameObject(s, before, remediation.Snapshot{Exists: true, UID: "u1"}); err != nil {
		t.Errorf("same object refused: %v", err)
	}
	var appErr *temporal.ApplicationError
	if err := sameObject(s, before, remediation.Snapshot{Exists: true, UID: "u2"}); !errors.As(err, &appErr) || appErr.Type() != remediation.ErrTargetChanged {
		t.Errorf("namesake: %v, want %s", err, remediation.ErrTargetChanged)
	}
	if err := sameObject(s, before, remediation.Snapshot{}); !errors.As(err, &appErr) || appErr.Type() != remediation.ErrNotFound {
		t.Errorf("gone: %v, want %s", err, remediation.ErrNotFound)
	}
}

func TestApprovalsCheck(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &Approvals{Keys: map[string]ed25519.PublicKey{"gw": pub}}
	rule := remediation.ApprovalRule{Remediation: "r1", StepDigest: "d1", Requester: remediation.Requester{Kind: "agent", Name: "bot"}, Groups: []string{"oncall"}}
	approval := remediation.Approval{Remediation: "r1", StepDigest: "d1", Approver: remediation.Approver{ID: "bob", Source: "cli"}, Group: "oncall", Verdict: remediation.VerdictApprove, At: time.Now()}

	res, err := a.Check(context.Background(), remediation.CheckApprovalInput{Approval: approval.Sign("gw", priv), Rule: rule})
	if err != nil || !res.Accepted {
		t.Fatalf("signed approval refused: %+v %v", res, err)
	}
	res, _ = a.Check(context.Background(), remediation.CheckApprovalInput{Approval: approval, Rule: rule})
	if res.Accepted || res.Reason == "" {
		t.Errorf("unsigned approval accepted: %+v", res)
	}
	rule.Counted = []string{"bob"}
	res, _ = a.Check(context.Background(), remediation.CheckApprovalInput{Approval: approval.Sign("gw", priv), Rule: rule})
	if res.Accepted {
		t.Errorf("repeat approver accepted: %+v", res)
	}
}
