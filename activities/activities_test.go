package activities

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

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

// leaseSource hands out one leased client and counts its releases.
type leaseSource struct {
	client   kubernetes.Interface
	mu       sync.Mutex
	releases int
}

func (s *leaseSource) ClientFor(context.Context, remediation.StepRef) (kubernetes.Interface, func(context.Context) error, error) {
	c := &LeasedClient{Interface: s.client, lease: remediation.LeaseInfo{LeaseID: "kubernetes/creds/reins-lab-nodes/l1", Role: "reins-lab-nodes"}, mu: &sync.Mutex{}}
	return c, func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.releases++
		c.mu.Lock()
		c.lease.Revoked = true
		c.mu.Unlock()
		return nil
	}, nil
}

func (s *leaseSource) released() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.releases
}

// crashingClient panics on its first write, as a bug in a write would.
type crashingClient struct{ kubernetes.Interface }

func (crashingClient) CoreV1() typedcorev1.CoreV1Interface { panic("write crashed") }

// The step's credential is released however Execute and Compensate end: a
// success (whose result describes the revoked lease), a failure, and a
// panic, which the SDK recovers from and fails the attempt with.
func TestStepCredentialReleasedOnEveryExit(t *testing.T) {
	node := func(unschedulable bool) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1"}, Spec: corev1.NodeSpec{Unschedulable: unschedulable}}
	}
	refused := func(n *corev1.Node) kubernetes.Interface {
		c := fake.NewClientset(n)
		c.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "n1", errors.New("no"))
		})
		return c
	}
	schedulable := false
	sref := remediation.StepRef{Remediation: "r1", Environment: "lab", Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: remediation.KindNode, Name: "n1"}}}
	before := remediation.Snapshot{Exists: true, UID: "u1", Unschedulable: &schedulable}
	crashed := func(err error) bool {
		var pe *temporal.PanicError
		return errors.As(err, &pe) && strings.Contains(pe.Error(), "write crashed")
	}
	for _, c := range []struct {
		name    string
		writer  func(*corev1.Node) kubernetes.Interface
		wantErr func(error) bool // nil: success
	}{
		{"success", func(n *corev1.Node) kubernetes.Interface { return fake.NewClientset(n) }, nil},
		{"failure", refused, func(err error) bool { return isFinal(err, remediation.ErrForbidden) }},
		{"panic", func(n *corev1.Node) kubernetes.Interface { return crashingClient{fake.NewClientset(n)} }, crashed},
	} {
		for _, compensate := range []bool{false, true} {
			name := c.name + "/execute"
			if compensate {
				name = c.name + "/compensate"
			}
			t.Run(name, func(t *testing.T) {
				current := node(compensate) // a compensation finds the node cordoned
				src := &leaseSource{client: c.writer(current)}
				k := &Kubernetes{Reader: fake.NewClientset(current), Writers: src}
				var ts testsuite.WorkflowTestSuite
				ts.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler))) // the SDK logs the panic's stack
				env := ts.NewTestActivityEnvironment()
				env.RegisterActivityWithOptions(k.Execute, activity.RegisterOptions{Name: remediation.ActivityExecute})
				env.RegisterActivityWithOptions(k.Compensate, activity.RegisterOptions{Name: remediation.ActivityCompensate})
				var (
					lease *remediation.LeaseInfo
					err   error
				)
				if compensate {
					var v interface{ Get(any) error }
					if v, err = env.ExecuteActivity(remediation.ActivityCompensate, remediation.CompensateInput{StepRef: sref, Before: before}); err == nil {
						var res remediation.CompensateResult
						if err = v.Get(&res); err == nil && !res.Changed {
							t.Errorf("result %+v, want changed", res)
						}
						lease = res.Lease
					}
				} else {
					var v interface{ Get(any) error }
					if v, err = env.ExecuteActivity(remediation.ActivityExecute, remediation.ExecuteInput{StepRef: sref, Before: before}); err == nil {
						var res remediation.ExecuteResult
						if err = v.Get(&res); err == nil && !res.Changed {
							t.Errorf("result %+v, want changed", res)
						}
						lease = res.Lease
					}
				}
				if got := src.released(); got != 1 {
					t.Errorf("credential released %d times, want 1", got)
				}
				switch {
				case c.wantErr == nil && err != nil:
					t.Fatal(err)
				case c.wantErr == nil:
					if lease == nil || lease.LeaseID != "kubernetes/creds/reins-lab-nodes/l1" || !lease.Revoked {
						t.Errorf("lease %+v, want the revoked lease", lease)
					}
				case !c.wantErr(err):
					t.Errorf("got %v (%T)", err, err)
				}
				// A failure carries the revoked lease for the workflow's
				// audit records, and keeps its type and message.
				if c.name == "failure" {
					var appErr *temporal.ApplicationError
					var failed remediation.LeaseInfo
					if !errors.As(err, &appErr) || !appErr.HasDetails() || appErr.Details(&failed) != nil ||
						failed.LeaseID != "kubernetes/creds/reins-lab-nodes/l1" || !failed.Revoked {
						t.Errorf("failure %v carries lease %+v, want the revoked lease", err, failed)
					}
					if !strings.Contains(err.Error(), "the step's credential may not do this") {
						t.Errorf("failure message %q lost the cause", err)
					}
				}
			})
		}
	}
}
