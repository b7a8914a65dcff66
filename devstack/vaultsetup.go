package devstack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/reins-dev/reins/deploy"
)

// Names ConfigureVault creates; they match deploy/.
const (
	// ReinsNamespace holds the worker's and Vault's ServiceAccounts.
	ReinsNamespace = "reins-system"
	// WorkerServiceAccount is the worker's own, read-only identity.
	WorkerServiceAccount = "reins-worker"
	// VaultServiceAccount is Vault's identity in the cluster.
	VaultServiceAccount = "vault"
	// VaultWorkerRole names the worker's AppRole and Kubernetes auth role
	// and its policy.
	VaultWorkerRole = "reins-worker"
	// EnvironmentLabel puts a namespace in an environment: the Vault role of
	// environment E mints credentials only for namespaces labelled E.
	EnvironmentLabel = "reins.dev/environment"
	// CodecTransitKey is the transit key of the payload codec.
	CodecTransitKey = "reins-codec"
)

// VaultSetupOptions configures ConfigureVault.
type VaultSetupOptions struct {
	// Vault is the dev server to configure. Required.
	Vault *Vault
	// Kube is the control plane its Kubernetes engines point at. Required.
	Kube *Kube
	// Dir receives the worker's read-only kubeconfig, its ServiceAccount
	// token and its AppRole secret id. Default: Kube.Dir.
	Dir string
	// TokenLifetime is the lifetime of the ServiceAccount tokens made for
	// Vault and the worker. Default: 24 hours.
	TokenLifetime time.Duration
	// Logger receives progress messages. Default: slog.Default().
	Logger *slog.Logger
}

// VaultSetup is what ConfigureVault made: a Vault whose Kubernetes secrets
// engine mints reins' step credentials against Kube, whose transit engine has
// the codec key, and a worker identity that is read-only in Kubernetes and
// may use exactly deploy/vault-policy-worker.hcl in Vault.
type VaultSetup struct {
	// Addr is Vault's address.
	Addr string
	// WorkerKubeconfig is a kubeconfig for the worker's own ServiceAccount
	// (reins-system/reins-worker): read-only (deploy/worker-rbac.yaml).
	WorkerKubeconfig string
	// WorkerTokenFile holds that ServiceAccount's token: the JWT for Vault's
	// Kubernetes auth (role reins-worker).
	WorkerTokenFile string
	// AppRoleRoleID and AppRoleSecretIDFile log in as the worker with
	// AppRole (role reins-worker). The role id is not secret on its own;
	// the secret id is only in the file.
	AppRoleRoleID       string
	AppRoleSecretIDFile string

	opts     VaultSetupOptions
	log      *slog.Logger
	secretID string
}

// ConfigureVault applies deploy/ to Kube (the worker's read-only RBAC, the
// step ClusterRoles, Vault's ServiceAccount and RBAC), and configures Vault:
// the kubernetes secrets engine against Kube's API server with the roles of
// deploy/vault-roles.yaml, the transit engine with the codec key, the
// reins-worker policy, and AppRole and Kubernetes auth for the worker.
func ConfigureVault(ctx context.Context, opts VaultSetupOptions) (*VaultSetup, error) {
	if opts.Vault == nil || opts.Kube == nil {
		return nil, errors.New("configure vault: VaultSetupOptions.Vault and .Kube are required")
	}
	if opts.Dir == "" {
		opts.Dir = opts.Kube.Dir
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	s := &VaultSetup{Addr: opts.Vault.Addr, opts: opts, log: loggerOr(opts.Logger)}
	s.AppRoleRoleID = "reins-worker-" + randomHex(8)
	s.secretID = randomHex(24)
	s.AppRoleSecretIDFile = filepath.Join(opts.Dir, "vault-secret-id")
	s.WorkerTokenFile = filepath.Join(opts.Dir, "reins-worker.token")
	s.WorkerKubeconfig = filepath.Join(opts.Dir, "reins-worker.kubeconfig")
	if err := os.WriteFile(s.AppRoleSecretIDFile, []byte(s.secretID+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("configure vault: %w", err)
	}
	kc, err := kubernetes.NewForConfig(opts.Kube.Config)
	if err != nil {
		return nil, fmt.Errorf("configure vault: %w", err)
	}
	for _, f := range []string{deploy.WorkerRBAC, deploy.StepRBAC, deploy.VaultRBAC} {
		if err := ApplyManifest(ctx, kc, f); err != nil {
			return nil, fmt.Errorf("configure vault: %w", err)
		}
	}
	workerToken, err := serviceAccountToken(ctx, kc, ReinsNamespace, WorkerServiceAccount, opts.TokenLifetime)
	if err != nil {
		return nil, fmt.Errorf("configure vault: %w", err)
	}
	if err := os.WriteFile(s.WorkerTokenFile, []byte(workerToken), 0o600); err != nil {
		return nil, fmt.Errorf("configure vault: %w", err)
	}
	if err := writeTokenKubeconfig(s.WorkerKubeconfig, opts.Kube.Config, s.WorkerTokenFile); err != nil {
		return nil, fmt.Errorf("configure vault: %w", err)
	}
	if err := s.Apply(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply (re)configures Vault: after a dev server restarts it has forgotten
// everything, and Apply sets up the same engines, roles, policy and worker
// credentials (the same AppRole role id and secret id) again.
func (s *VaultSetup) Apply(ctx context.Context) error {
	started := time.Now()
	kc, err := kubernetes.NewForConfig(s.opts.Kube.Config)
	if err != nil {
		return fmt.Errorf("configure vault: %w", err)
	}
	vaultJWT, err := serviceAccountToken(ctx, kc, ReinsNamespace, VaultServiceAccount, s.opts.TokenLifetime)
	if err != nil {
		return fmt.Errorf("configure vault: %w", err)
	}
	v, err := s.RootClient()
	if err != nil {
		return err
	}
	host := s.opts.Kube.Config.Host
	ca := string(s.opts.Kube.Config.CAData)
	if ca == "" {
		return errors.New("configure vault: the Kubernetes config has no CA data")
	}
	for _, m := range []struct{ path, typ string }{
		{"sys/mounts/kubernetes", "kubernetes"},
		{"sys/mounts/transit", "transit"},
		{"sys/auth/approle", "approle"},
		{"sys/auth/kubernetes", "kubernetes"},
	} {
		if err := enableMount(ctx, v, m.path, m.typ); err != nil {
			return err
		}
	}
	writes := []vaultWrite{
		{"kubernetes/config", map[string]any{
			"kubernetes_host": host, "kubernetes_ca_cert": ca,
			"service_account_jwt": vaultJWT, "disable_local_ca_jwt": true,
		}},
		{"auth/kubernetes/config", map[string]any{
			"kubernetes_host": host, "kubernetes_ca_cert": ca,
			"token_reviewer_jwt": vaultJWT, "disable_local_ca_jwt": true,
		}},
	}
	policy, err := deploy.Files.ReadFile(deploy.VaultWorkerPolicy)
	if err != nil {
		return fmt.Errorf("configure vault: %w", err)
	}
	writes = append(writes, vaultWrite{"sys/policies/acl/" + VaultWorkerRole, map[string]any{"policy": string(policy)}})
	roles, err := VaultRoleWrites()
	if err != nil {
		return err
	}
	writes = append(writes, roles...)
	writes = append(writes,
		vaultWrite{"auth/approle/role/" + VaultWorkerRole + "/role-id", map[string]any{"role_id": s.AppRoleRoleID}},
		vaultWrite{"auth/approle/role/" + VaultWorkerRole + "/custom-secret-id", map[string]any{"secret_id": s.secretID}},
	)
	for _, w := range writes {
		if _, err := v.Logical().WriteWithContext(ctx, w.Path, w.Data); err != nil {
			// The error may quote the request; the path is enough.
			return fmt.Errorf("configure vault: write %s: %s", w.Path, redactVaultError(err))
		}
	}
	s.log.Info("devstack: vault configured", "addr", s.Addr, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// RootClient is a Vault client with the dev server's root token.
func (s *VaultSetup) RootClient() (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	v, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	v.SetToken(s.opts.Vault.RootToken)
	return v, nil
}

// WorkerToken creates a Vault token with only the reins-worker policy
// (renewable, 1h), as an operator would hand one to a worker that
// authenticates with VAULT_TOKEN.
func (s *VaultSetup) WorkerToken(ctx context.Context) (string, error) {
	v, err := s.RootClient()
	if err != nil {
		return "", err
	}
	sec, err := v.Auth().Token().CreateWithContext(ctx, &vaultapi.TokenCreateRequest{
		Policies: []string{VaultWorkerRole}, TTL: "1h", Renewable: new(true), DisplayName: "reins-worker",
	})
	if err != nil {
		return "", fmt.Errorf("create worker token: %s", redactVaultError(err))
	}
	return sec.Auth.ClientToken, nil
}

// String describes the setup without its secrets.
func (s *VaultSetup) String() string { return "reins vault setup at " + s.Addr }

// LogValue keeps the secrets out of slog records.
func (s *VaultSetup) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", s.Addr), slog.String("worker_kubeconfig", s.WorkerKubeconfig))
}

type vaultWrite struct {
	Path string         `json:"path"`
	Data map[string]any `json:"data"`
}

// VaultRoleWrites reads deploy/vault-roles.yaml.
func VaultRoleWrites() ([]vaultWrite, error) {
	data, err := deploy.Files.ReadFile(deploy.VaultRoles)
	if err != nil {
		return nil, err
	}
	var writes []vaultWrite
	if err := yaml.UnmarshalStrict(data, &writes); err != nil {
		return nil, fmt.Errorf("deploy/%s: %w", deploy.VaultRoles, err)
	}
	for i, w := range writes {
		if w.Path == "" {
			return nil, fmt.Errorf("deploy/%s: entry %d has no path", deploy.VaultRoles, i)
		}
	}
	return writes, nil
}

func enableMount(ctx context.Context, v *vaultapi.Client, path, typ string) error {
	_, err := v.Logical().WriteWithContext(ctx, path, map[string]any{"type": typ})
	var re *vaultapi.ResponseError
	if err != nil && errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(err.Error(), "path is already in use") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("configure vault: enable %s at %s: %s", typ, path, redactVaultError(err))
	}
	return nil
}

// redactVaultError keeps a Vault error's status and messages, not the request.
func redactVaultError(err error) string {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("%d %v", re.StatusCode, re.Errors)
	}
	return err.Error()
}

// ApplyManifest creates, or updates, the objects of one of deploy/'s
// manifests: Namespaces, ServiceAccounts, ClusterRoles, ClusterRoleBindings,
// Roles and RoleBindings.
func ApplyManifest(ctx context.Context, kc kubernetes.Interface, name string) error {
	data, err := deploy.Files.ReadFile(name)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("deploy/%s: %w", name, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("deploy/%s: %w", name, err)
		}
		if err := apply(ctx, kc, obj); err != nil {
			return fmt.Errorf("deploy/%s: %w", name, err)
		}
	}
}

func apply(ctx context.Context, kc kubernetes.Interface, obj runtime.Object) error {
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = kc.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	case *corev1.ServiceAccount:
		_, err = kc.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	case *rbacv1.ClusterRole:
		_, err = kc.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = kc.RbacV1().ClusterRoles().Update(ctx, o, metav1.UpdateOptions{})
		}
	case *rbacv1.ClusterRoleBinding:
		_, err = kc.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = kc.RbacV1().ClusterRoleBindings().Update(ctx, o, metav1.UpdateOptions{})
		}
	case *rbacv1.Role:
		_, err = kc.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = kc.RbacV1().Roles(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
		}
	case *rbacv1.RoleBinding:
		_, err = kc.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = kc.RbacV1().RoleBindings(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
		}
	default:
		return fmt.Errorf("cannot apply a %T", obj)
	}
	return err
}

// serviceAccountToken asks the TokenRequest API for a token of ns/name.
func serviceAccountToken(ctx context.Context, kc kubernetes.Interface, ns, name string, lifetime time.Duration) (string, error) {
	secs := int64(lifetime.Seconds())
	tr, err := kc.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// writeTokenKubeconfig writes a kubeconfig for base's API server that
// authenticates with the token in tokenFile.
func writeTokenKubeconfig(path string, base *rest.Config, tokenFile string) error {
	const name = "reins-worker"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: base.Host, CertificateAuthorityData: base.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{TokenFile: tokenFile}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: ReinsNamespace}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (Go 1.24+ crashes instead)
	return hex.EncodeToString(b)
}
