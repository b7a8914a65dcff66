package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/temporal"
	"k8s.io/client-go/rest"

	"github.com/reins-dev/reins/remediation"
)

func ref(env, kind, ns string) remediation.StepRef {
	return remediation.StepRef{Environment: env, Step: remediation.Step{Target: remediation.Target{Kind: kind, Namespace: ns, Name: "x"}}}
}

func TestRoleMapChoose(t *testing.T) {
	m := RoleMap{
		Roles:     map[string]string{"production/payments": "reins-payments", "lab": "reins-sandbox"},
		NodeRoles: map[string]string{"lab": "reins-sandbox-nodes"},
	}
	cases := []struct {
		ref  remediation.StepRef
		want Choice
	}{
		{ref("staging", remediation.KindDeployment, "shop"), Choice{Role: "reins-staging", Namespace: "shop"}},
		{ref("production", remediation.KindPod, "shop"), Choice{Role: "reins-production", Namespace: "shop"}},
		{ref("production", remediation.KindDeployment, "payments"), Choice{Role: "reins-payments", Namespace: "payments"}},
		{ref("lab", remediation.KindStatefulSet, "x"), Choice{Role: "reins-sandbox", Namespace: "x"}},
		{ref("production", remediation.KindNode, ""), Choice{Role: "reins-production-nodes", Namespace: DefaultClusterNamespace, Cluster: true}},
		{ref("lab", remediation.KindNode, ""), Choice{Role: "reins-sandbox-nodes", Namespace: DefaultClusterNamespace, Cluster: true}},
	}
	for _, c := range cases {
		got, err := m.Choose(c.ref)
		if err != nil || got != c.want {
			t.Errorf("%s %s/%s: got %+v, %v; want %+v", c.ref.Environment, c.ref.Step.Target.Kind, c.ref.Step.Target.Namespace, got, err, c.want)
		}
	}
	for _, r := range []remediation.StepRef{
		ref("Prod Env", remediation.KindDeployment, "shop"), // no convention for it
		ref("", remediation.KindDeployment, "shop"),
		ref("../sys", remediation.KindNode, ""),
	} {
		if _, err := m.Choose(r); !isFinal(err, remediation.ErrForbidden) {
			t.Errorf("environment %q: got %v, want a final Forbidden", r.Environment, err)
		}
	}
	if _, err := m.Choose(ref("staging", remediation.KindDeployment, "")); !isFinal(err, remediation.ErrInvalid) {
		t.Errorf("no namespace: got %v", err)
	}
}

func isFinal(err error, typ string) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable() && ae.Type() == typ
}

// fakeVault answers mints (which must come through WriteOnce) and
// revocations (through Write); fail decides each answer, and mint, when set,
// answers the mints that fail lets through.
type fakeVault struct {
	mu    sync.Mutex
	calls []string
	fail  func(path string, n int) error
	mint  func(ctx context.Context, path string) (*vaultapi.Secret, error)
}

func (f *fakeVault) record(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, path)
	return len(f.calls)
}

func (f *fakeVault) Write(_ context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	n := f.record(path)
	if !strings.HasPrefix(path, "sys/leases/revoke/") {
		return nil, fmt.Errorf("%s sent with Write, which the client may repeat: a mint must use WriteOnce", path)
	}
	if f.fail != nil {
		if err := f.fail(path, n); err != nil {
			return nil, err
		}
	}
	if data["sync"] != true {
		return nil, errors.New("revocation must be synchronous")
	}
	return nil, nil
}

func (f *fakeVault) WriteOnce(ctx context.Context, path string, _ map[string]any) (*vaultapi.Secret, error) {
	n := f.record(path)
	if f.fail != nil {
		if err := f.fail(path, n); err != nil {
			return nil, err
		}
	}
	if f.mint != nil {
		return f.mint(ctx, path)
	}
	return &vaultapi.Secret{LeaseID: path + "/lease1", Data: map[string]any{"service_account_token": "tok"}}, nil
}

func (f *fakeVault) revoked(leaseID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == "sys/leases/revoke/"+leaseID {
			n++
		}
	}
	return n
}

func vaultErr(code int) error {
	return &vaultapi.ResponseError{StatusCode: code, Errors: []string{http.StatusText(code)}}
}

func TestVaultCredentialsErrors(t *testing.T) {
	ctx := context.Background()
	cluster := &rest.Config{Host: "https://127.0.0.1:6443"}
	step := ref("staging", remediation.KindDeployment, "shop")
	for _, c := range []struct {
		err       error
		retryable bool
	}{
		{errors.New("dial tcp 127.0.0.1:8200: connect: connection refused"), true},
		{vaultErr(http.StatusServiceUnavailable), true},
		{vaultErr(http.StatusInternalServerError), true},
		{vaultErr(http.StatusTooManyRequests), true},
		{vaultErr(http.StatusBadRequest), false},
		{vaultErr(http.StatusForbidden), false},
		{vaultErr(http.StatusNotFound), false},
	} {
		v := &VaultCredentials{Vault: &fakeVault{fail: func(string, int) error { return c.err }}, Cluster: cluster}
		_, _, err := v.ClientFor(ctx, step)
		var ae *temporal.ApplicationError
		isApp := errors.As(err, &ae)
		switch {
		case err == nil:
			t.Errorf("%v: no error", c.err)
		case c.retryable && isApp:
			t.Errorf("%v: got an application error %v, want a plain (retryable) one", c.err, err)
		case !c.retryable && !isFinal(err, remediation.ErrForbidden):
			t.Errorf("%v: got %v, want a final Forbidden", c.err, err)
		}
	}
}

func TestVaultCredentialsMintAndRevoke(t *testing.T) {
	ctx := context.Background()
	f := &fakeVault{}
	v := &VaultCredentials{Vault: f, Cluster: &rest.Config{Host: "https://127.0.0.1:6443"}, Mount: "k8s"}
	c, release, err := v.ClientFor(ctx, ref("staging", remediation.KindDeployment, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	if l := leaseOf(c); l == nil || l.LeaseID != "k8s/creds/reins-staging/lease1" || l.Role != "reins-staging" || l.Namespace != "shop" || l.Revoked {
		t.Fatalf("lease %+v", l)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	if l := leaseOf(c); !l.Revoked {
		t.Error("not marked revoked")
	}
	want := []string{"k8s/creds/reins-staging", "sys/leases/revoke/k8s/creds/reins-staging/lease1"}
	if strings.Join(f.calls, " ") != strings.Join(want, " ") {
		t.Errorf("calls %v, want %v", f.calls, want)
	}
}

// A revocation that keeps failing is retried, reported, and handed to the
// background revoker, which finishes it once Vault answers.
func TestVaultCredentialsRevokeRetries(t *testing.T) {
	ctx := context.Background()
	down := true
	var mu sync.Mutex
	f := &fakeVault{fail: func(path string, _ int) error {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(path, "sys/leases/revoke/") && down {
			return vaultErr(http.StatusServiceUnavailable)
		}
		return nil
	}}
	v := &VaultCredentials{Vault: f, Cluster: &rest.Config{Host: "https://127.0.0.1:6443"}, RevokeAttempts: 3, RevokeBackoff: 1}
	c, release, err := v.ClientFor(ctx, ref("staging", remediation.KindDeployment, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := release(ctx); err == nil {
		t.Fatal("release succeeded while Vault refused every revocation")
	}
	if leaseOf(c).Revoked {
		t.Error("marked revoked")
	}
	if got := len(f.calls); got != 4 {
		t.Errorf("%d calls, want 1 mint and 3 revocation attempts", got)
	}
	if p := v.Pending(); len(p) != 1 {
		t.Fatalf("pending %v", p)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { v.RunRevoker(rctx, 1); close(done) }()
	deadline := time.After(10 * time.Second)
	for len(v.Pending()) > 0 {
		select {
		case <-done:
			t.Fatal("revoker stopped")
		case <-deadline:
			t.Fatal("the revoker did not revoke the lease once Vault answered")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
}

// A mint that fails after Vault created its lease revokes the lease: an
// answer without a usable token, or an error that comes with a lease. When
// the revocation fails too, the lease is left to the background revoker,
// and the mint's own error is what the activity sees.
func TestFailedMintRevokesItsLease(t *testing.T) {
	const lease = "kubernetes/creds/reins-staging/l1"
	for _, c := range []struct {
		name      string
		secret    *vaultapi.Secret
		err       error
		revokeErr error
		retryable bool
	}{
		{name: "no token", secret: &vaultapi.Secret{LeaseID: lease, Data: map[string]any{}}},
		{name: "empty token", secret: &vaultapi.Secret{LeaseID: lease, Data: map[string]any{"service_account_token": ""}}},
		{name: "token not a string", secret: &vaultapi.Secret{LeaseID: lease, Data: map[string]any{"service_account_token": 42}}},
		{name: "error with a lease", secret: &vaultapi.Secret{LeaseID: lease}, err: vaultErr(http.StatusInternalServerError), retryable: true},
		{name: "revocation fails", secret: &vaultapi.Secret{LeaseID: lease, Data: map[string]any{}}, revokeErr: vaultErr(http.StatusServiceUnavailable)},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeVault{
				mint: func(context.Context, string) (*vaultapi.Secret, error) { return c.secret, c.err },
				fail: func(path string, _ int) error {
					if strings.HasPrefix(path, "sys/leases/revoke/") {
						return c.revokeErr
					}
					return nil
				},
			}
			v := &VaultCredentials{Vault: f, Cluster: &rest.Config{Host: "https://127.0.0.1:6443"}, RevokeAttempts: 2, RevokeBackoff: 1}
			_, _, err := v.ClientFor(context.Background(), ref("staging", remediation.KindDeployment, "shop"))
			switch {
			case err == nil:
				t.Fatal("no error")
			case c.retryable && isFinal(err, remediation.ErrForbidden):
				t.Errorf("got %v, want a retryable error", err)
			case !c.retryable && !isFinal(err, remediation.ErrForbidden):
				t.Errorf("got %v, want a final Forbidden", err)
			}
			if f.revoked(lease) == 0 {
				t.Errorf("lease not revoked; calls %v", f.calls)
			}
			pending := v.Pending()
			if c.revokeErr == nil && len(pending) != 0 {
				t.Errorf("pending %v after a revocation that succeeded", pending)
			}
			if c.revokeErr != nil && (len(pending) != 1 || pending[0] != lease) {
				t.Errorf("pending %v, want the lease handed to the background revoker", pending)
			}
		})
	}
}

// A step that ends while Vault mints does not cut the mint short (its
// answer carries the lease): the mint runs to its answer under its own
// deadline, and the lease, which nobody will use, is revoked. A step that
// has already ended mints nothing.
func TestMintAfterTheStepEndedRevokesTheLease(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var deadline time.Duration
	f := &fakeVault{mint: func(mctx context.Context, path string) (*vaultapi.Secret, error) {
		cancel() // the activity ends (timeout, cancellation) while Vault works
		d, ok := mctx.Deadline()
		if !ok {
			return nil, errors.New("a mint without a deadline")
		}
		deadline = time.Until(d)
		if err := mctx.Err(); err != nil {
			return nil, fmt.Errorf("the mint was cut short: %w", err)
		}
		return &vaultapi.Secret{LeaseID: path + "/l1", Data: map[string]any{"service_account_token": "tok"}}, nil
	}}
	v := &VaultCredentials{Vault: f, Cluster: &rest.Config{Host: "https://127.0.0.1:6443"}, MintTimeout: 5 * time.Second}
	_, _, err := v.ClientFor(ctx, ref("staging", remediation.KindDeployment, "shop"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the step's cancellation", err)
	}
	if f.revoked("kubernetes/creds/reins-staging/l1") != 1 {
		t.Errorf("the lease minted for an ended step is not revoked; calls %v", f.calls)
	}
	if deadline <= 0 || deadline > 5*time.Second {
		t.Errorf("mint deadline %v away, want at most MintTimeout (5s)", deadline)
	}
	if p := v.Pending(); len(p) != 0 {
		t.Errorf("pending %v", p)
	}

	f = &fakeVault{}
	v.Vault = f
	if _, _, err := v.ClientFor(ctx, ref("staging", remediation.KindDeployment, "shop")); !errors.Is(err, context.Canceled) {
		t.Errorf("ended step: got %v, want its cancellation", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("an ended step sent %v", f.calls)
	}
}
