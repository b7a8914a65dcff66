package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/temporal"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/vaultclient"
)

// VaultWriter sends writes to Vault: *vaultclient.Client.
type VaultWriter interface {
	// Write sends a write that the client may repeat when Vault fails (a
	// 5xx, a lost answer): a revocation, which may be repeated.
	Write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error)
	// WriteOnce sends a write that the client never repeats: a mint, which
	// would create a second lease and lose the first. The activity retries.
	WriteOnce(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error)
}

// DefaultMintTimeout bounds a mint request; see VaultCredentials.MintTimeout.
const DefaultMintTimeout = 30 * time.Second

// MinTokenTTL is the shortest lifetime the Kubernetes TokenRequest API grants
// (it refuses anything under 10 minutes). Revocation when the step ends, not
// the TTL, is what bounds a step credential's life.
const MinTokenTTL = 10 * time.Minute

// RoleMap chooses the Vault role a step's credential is minted from. The
// convention, which the roles in deploy/vault-roles.yaml follow:
//
//   - a namespaced target (Deployment, StatefulSet, DaemonSet, Pod) in
//     environment E uses role "reins-E"; the role's namespace selector allows
//     only the namespaces labelled reins.dev/environment=E, and the credential
//     is bound (RoleBinding) in the target's namespace only;
//   - a Node (cluster-scoped) uses role "reins-E-nodes", a ClusterRole-based
//     role whose credential is bound cluster-wide (ClusterRoleBinding) to a
//     ClusterRole that may only patch nodes and create events; its
//     ServiceAccount lives in ClusterNamespace.
//
// Roles and NodeRoles override the convention.
type RoleMap struct {
	// Roles maps "environment/namespace" or "environment" to a role for
	// namespaced targets; the more specific key wins.
	Roles map[string]string
	// NodeRoles maps "environment" to a role for Nodes.
	NodeRoles map[string]string
	// ClusterNamespace holds the ServiceAccounts of cluster-scoped
	// credentials. Default "reins-system".
	ClusterNamespace string
}

// DefaultClusterNamespace is where cluster-scoped credentials' ServiceAccounts live.
const DefaultClusterNamespace = "reins-system"

var environmentRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Choice is a role and where its credential is scoped.
type Choice struct {
	Role string
	// Namespace is the credential's namespace: the target's, or
	// ClusterNamespace for a cluster-scoped target.
	Namespace string
	// Cluster: bind cluster-wide (a ClusterRoleBinding).
	Cluster bool
}

// Choose returns the role for the step.
func (m RoleMap) Choose(ref remediation.StepRef) (Choice, error) {
	env := ref.Environment
	t := ref.Step.Target
	if t.Kind == remediation.KindNode {
		role := m.NodeRoles[env]
		if role == "" {
			if !environmentRE.MatchString(env) {
				return Choice{}, final(remediation.ErrForbidden, "environment %q has no Vault node role: name it in vault.node_roles (the convention reins-<environment>-nodes needs a lower-case DNS label)", env)
			}
			role = "reins-" + env + "-nodes"
		}
		ns := m.ClusterNamespace
		if ns == "" {
			ns = DefaultClusterNamespace
		}
		return Choice{Role: role, Namespace: ns, Cluster: true}, nil
	}
	if t.Namespace == "" {
		return Choice{}, final(remediation.ErrInvalid, "%s has no namespace: a namespaced credential needs one", t)
	}
	role := m.Roles[env+"/"+t.Namespace]
	if role == "" {
		role = m.Roles[env]
	}
	if role == "" {
		if !environmentRE.MatchString(env) {
			return Choice{}, final(remediation.ErrForbidden, "environment %q has no Vault role: name it in vault.roles (the convention reins-<environment> needs a lower-case DNS label)", env)
		}
		role = "reins-" + env
	}
	return Choice{Role: role, Namespace: t.Namespace}, nil
}

// VaultCredentials is a ClientSource that mints, for every step and every
// compensation, a fresh Kubernetes credential from Vault's Kubernetes secrets
// engine (kubernetes/creds/<role>), scoped to the step's target namespace, and
// revokes its lease when the step ends. Vault creates a ServiceAccount and a
// (Cluster)RoleBinding per lease and deletes them on revocation, so the token
// is dead as soon as the step is.
//
// Errors: Vault unreachable, sealed or failing (5xx, 429) are retryable, so
// the activity retries with backoff and never acts without a credential;
// 400 and 403 (the role does not allow this namespace, the worker's policy
// does not allow this role) and 404 (no such mount or role) are final, of
// type remediation.ErrForbidden.
type VaultCredentials struct {
	// Vault sends the mint and revoke requests.
	Vault VaultWriter
	// Mount is the Kubernetes secrets engine's mount path. Default "kubernetes".
	Mount string
	// Roles chooses the role per step.
	Roles RoleMap
	// Cluster is the API server the credentials are for: its Host and TLS
	// settings are used, any credential it holds is not. Required.
	Cluster *rest.Config
	// TTL is the lease TTL asked for. Default (and minimum): MinTokenTTL.
	TTL time.Duration
	// MintTimeout bounds a mint request. The request is not cut short when
	// the activity's context ends (the lease Vault creates would be lost
	// with its answer): it runs until Vault answers or MintTimeout passes,
	// and the lease of an answer that comes after the activity has ended
	// is revoked. Default DefaultMintTimeout.
	MintTimeout time.Duration
	// RevokeAttempts is how often a revocation is tried before release gives
	// up and hands it to the background revoker. Default 5.
	RevokeAttempts int
	// RevokeBackoff is the first wait between revocation attempts; it
	// doubles. Default 200ms.
	RevokeBackoff time.Duration
	// Logger receives what the background revoker does. Default slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time // lease id → when it expires anyway
}

var _ ClientSource = (*VaultCredentials)(nil)

// LeasedClient is a Kubernetes client whose credential is a Vault lease.
type LeasedClient struct {
	kubernetes.Interface
	lease remediation.LeaseInfo
	mu    *sync.Mutex
}

// Lease returns a copy of the lease's description.
func (c *LeasedClient) Lease() *remediation.LeaseInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lease
	return &l
}

// leaseOf returns the lease behind c, or nil when it has none.
func leaseOf(c kubernetes.Interface) *remediation.LeaseInfo {
	if lc, ok := c.(*LeasedClient); ok {
		return lc.Lease()
	}
	return nil
}

func (v *VaultCredentials) mount() string {
	if v.Mount == "" {
		return "kubernetes"
	}
	return strings.Trim(v.Mount, "/")
}

// ClientFor mints the step's credential and returns a client that writes with
// it, and the release function that revokes the lease (retrying; see
// RevokeAttempts). The returned client is a *LeasedClient.
func (v *VaultCredentials) ClientFor(ctx context.Context, ref remediation.StepRef) (kubernetes.Interface, func(context.Context) error, error) {
	if v.Cluster == nil {
		return nil, nil, errors.New("VaultCredentials.Cluster is not set: the API server the credentials are for")
	}
	choice, err := v.Roles.Choose(ref)
	if err != nil {
		return nil, nil, err
	}
	cred, err := v.Mint(ctx, choice)
	if err != nil {
		return nil, nil, err
	}
	return cred.Client, cred.Release, nil
}

// Credential is a minted credential: the client that uses it and the lease.
type Credential struct {
	Client *LeasedClient
	// Token is the ServiceAccount token: a secret, never logged, never
	// returned from an activity.
	Token string `json:"-"`
	v     *VaultCredentials
}

// Release revokes the lease; see VaultCredentials.RevokeAttempts.
func (c *Credential) Release(ctx context.Context) error {
	l := c.Client.Lease()
	err := c.v.Revoke(ctx, l.LeaseID)
	if err == nil {
		c.Client.mu.Lock()
		c.Client.lease.Revoked = true
		c.Client.mu.Unlock()
	}
	return err
}

// Mint asks Vault for a credential of the chosen role. Vault is asked once
// (WriteOnce: a repeat would mint a second lease); the activity retries. A
// lease that comes with a failure (an answer with no usable token, or an
// answer after ctx has ended) is revoked before Mint returns; see
// MintTimeout.
func (v *VaultCredentials) Mint(ctx context.Context, choice Choice) (*Credential, error) {
	path := v.mount() + "/creds/" + choice.Role
	op := fmt.Sprintf("mint a Kubernetes credential from Vault (%s, namespace %s)", path, choice.Namespace)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: the step has ended: %w", op, err)
	}
	data := map[string]any{
		"kubernetes_namespace": choice.Namespace,
		"ttl":                  v.ttl().String(),
		"cluster_role_binding": choice.Cluster,
	}
	timeout := v.MintTimeout
	if timeout <= 0 {
		timeout = DefaultMintTimeout
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	s, err := v.Vault.WriteOnce(mctx, path, data)
	cancel()
	cred, err := v.credential(ctx, op, choice, s, err)
	if err != nil {
		if s != nil && s.LeaseID != "" {
			v.discard(ctx, s.LeaseID, err)
		}
		return nil, err
	}
	return cred, nil
}

// credential checks a mint's answer and builds the client that uses it.
func (v *VaultCredentials) credential(ctx context.Context, op string, choice Choice, s *vaultapi.Secret, err error) (*Credential, error) {
	if err != nil {
		return nil, vaultError(op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: the step ended before Vault answered: %w", op, err)
	}
	token, _ := secretString(s, "service_account_token")
	if s == nil || s.LeaseID == "" || token == "" {
		return nil, final(remediation.ErrForbidden, "%s: the response has no lease or no token; is %s a Kubernetes secrets engine?", op, v.mount())
	}
	cfg := rest.AnonymousClientConfig(v.Cluster)
	cfg.BearerToken = token
	cfg.UserAgent = "reins-step"
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build a Kubernetes client for lease %s: %w", s.LeaseID, err)
	}
	lease := remediation.LeaseInfo{LeaseID: s.LeaseID, Role: choice.Role, Namespace: choice.Namespace}
	return &Credential{Client: &LeasedClient{Interface: kc, lease: lease, mu: &sync.Mutex{}}, Token: token, v: v}, nil
}

// discard revokes the lease of a mint that failed (the step's context may
// have ended: the revocation does not depend on it), so that no credential
// outlives the step that asked for it. A revocation that fails is logged
// and left to the background revoker (Revoke hands it over).
func (v *VaultCredentials) discard(ctx context.Context, leaseID string, cause error) {
	if err := v.Revoke(context.WithoutCancel(ctx), leaseID); err != nil {
		v.logger().Error("vault: the lease of a failed mint is not revoked; the background revoker keeps trying", "lease", leaseID, "mint_error", cause, "error", err)
		return
	}
	v.logger().Warn("vault: revoked the lease of a failed mint", "lease", leaseID, "mint_error", cause)
}

func (v *VaultCredentials) logger() *slog.Logger {
	if v.Logger == nil {
		return slog.Default()
	}
	return v.Logger
}

func (v *VaultCredentials) ttl() time.Duration {
	return max(v.TTL, MinTokenTTL)
}

// Revoke revokes a lease synchronously (Vault deletes the ServiceAccount and
// binding before answering), retrying with backoff. When every attempt
// fails, the lease is handed to the background revoker (RunRevoker) and the
// error is returned.
func (v *VaultCredentials) Revoke(ctx context.Context, leaseID string) error {
	attempts := v.RevokeAttempts
	if attempts <= 0 {
		attempts = 5
	}
	wait := v.RevokeBackoff
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	var err error
	for i := range attempts {
		if err = v.revokeOnce(ctx, leaseID); err == nil {
			v.forget(leaseID)
			return nil
		}
		if i == attempts-1 || !vaultclient.Wait(ctx, wait) {
			break
		}
		wait *= 2
	}
	v.remember(leaseID)
	return fmt.Errorf("revoke lease %s (%d attempts; the background revoker keeps trying until it expires): %w", leaseID, attempts, err)
}

func (v *VaultCredentials) revokeOnce(ctx context.Context, leaseID string) error {
	_, err := v.Vault.Write(ctx, "sys/leases/revoke/"+leaseID, map[string]any{"sync": true})
	return err
}

func (v *VaultCredentials) remember(leaseID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending == nil {
		v.pending = map[string]time.Time{}
	}
	if _, ok := v.pending[leaseID]; !ok {
		v.pending[leaseID] = time.Now().Add(v.ttl())
	}
}

func (v *VaultCredentials) forget(leaseID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.pending, leaseID)
}

// Pending lists the leases whose revocation failed and is still being retried.
func (v *VaultCredentials) Pending() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for id := range v.pending {
		out = append(out, id)
	}
	return out
}

// RunRevoker retries, every interval until ctx ends, the revocations that
// failed, until each succeeds or its lease has expired anyway.
func (v *VaultCredentials) RunRevoker(ctx context.Context, interval time.Duration) {
	log := v.logger()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v.mu.Lock()
		due := map[string]time.Time{}
		for id, exp := range v.pending {
			due[id] = exp
		}
		v.mu.Unlock()
		for id, exp := range due {
			if err := v.revokeOnce(ctx, id); err != nil {
				if time.Now().After(exp) {
					log.Warn("vault: gave up revoking a lease that has expired anyway", "lease", id)
					v.forget(id)
					continue
				}
				log.Warn("vault: lease revocation still failing; retrying", "lease", id, "error", err)
				continue
			}
			v.forget(id)
			log.Info("vault: lease revoked on retry", "lease", id)
		}
	}
}

// vaultError classifies a Vault error for Temporal.
func vaultError(op string, err error) error {
	if vaultclient.Retryable(err) {
		return fmt.Errorf("%s: %w (Vault unreachable or failing: retried)", op, err)
	}
	code := vaultclient.StatusCode(err)
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: Vault refused (%d): %v", op, code, err), remediation.ErrForbidden, err)
}

func secretString(s *vaultapi.Secret, key string) (string, bool) {
	if s == nil || s.Data == nil {
		return "", false
	}
	v, ok := s.Data[key].(string)
	return v, ok
}
