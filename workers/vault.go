package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/vaultclient"
)

// Credential modes (Config.Credentials).
const (
	// CredentialsVault: every step and compensation writes with a
	// credential minted for it from Vault and revoked when it ends.
	CredentialsVault = "vault"
	// CredentialsStatic: steps write with the worker's own identity. Only
	// for clusters without Vault; not for production.
	CredentialsStatic = "static"
)

// EnvCredentials overrides Config.Credentials.
const EnvCredentials = "REINS_CREDENTIALS"

// VaultConfig configures the Vault client (VAULT_ADDR, VAULT_TOKEN and the
// other VAULT_* variables of github.com/hashicorp/vault/api apply) and the
// per-step Kubernetes credentials.
type VaultConfig struct {
	// Addr is Vault's URL. Default: $VAULT_ADDR.
	Addr string `json:"addr"`
	// Auth is how reins authenticates to Vault.
	Auth VaultAuthConfig `json:"auth"`
	// KubernetesMount is the Kubernetes secrets engine's path. Default "kubernetes".
	KubernetesMount string `json:"kubernetes_mount"`
	// Roles maps "environment/namespace" or "environment" to the Vault role
	// a namespaced step's credential is minted from. Default: the
	// convention reins-<environment>.
	Roles map[string]string `json:"roles"`
	// NodeRoles maps "environment" to the (ClusterRole-based) Vault role for
	// Node steps. Default: reins-<environment>-nodes.
	NodeRoles map[string]string `json:"node_roles"`
	// ClusterNamespace holds the ServiceAccounts of Node steps' credentials.
	// Default "reins-system".
	ClusterNamespace string `json:"cluster_namespace"`
	// CredentialTTL is the TTL asked for each credential; Kubernetes grants
	// no less than 10m, the default. Revocation at the end of the step is
	// what bounds a credential.
	CredentialTTL Duration `json:"credential_ttl"`
	// KubernetesHost and KubernetesCAFile name the API server the minted
	// credentials are for. Default: the cluster of the worker's kubeconfig.
	KubernetesHost   string `json:"kubernetes_host"`
	KubernetesCAFile string `json:"kubernetes_ca_file"`
}

// VaultAuthConfig says how reins logs in to Vault. None of it is secret: the
// secrets (token, secret id, JWT) are read from files or the environment.
type VaultAuthConfig struct {
	// Method: "token" (default; $VAULT_TOKEN or TokenFile, for development),
	// "approle" or "kubernetes".
	Method string `json:"method"`
	// Mount is the auth method's path. Default: the method's name.
	Mount string `json:"mount"`
	// TokenFile holds the token (method token). Default: $VAULT_TOKEN.
	TokenFile string `json:"token_file"`
	// RoleID and SecretIDFile (method approle).
	RoleID       string `json:"role_id"`
	SecretIDFile string `json:"secret_id_file"`
	// Role and JWTFile (method kubernetes). JWTFile defaults to the pod's
	// ServiceAccount token.
	Role    string `json:"role"`
	JWTFile string `json:"jwt_file"`
}

// DefaultVaultConfig returns the Vault defaults.
func DefaultVaultConfig() VaultConfig {
	return VaultConfig{
		Auth:             VaultAuthConfig{Method: vaultclient.MethodToken},
		KubernetesMount:  "kubernetes",
		ClusterNamespace: activities.DefaultClusterNamespace,
		CredentialTTL:    Duration(activities.MinTokenTTL),
	}
}

func (c Config) validateCredentials() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config %s: "+format, append([]any{field}, args...)...))
	}
	if !slices.Contains([]string{CredentialsVault, CredentialsStatic}, c.Credentials) {
		bad("credentials", "is %q: use %q (per-step credentials from Vault) or %q (the worker's own identity; no Vault)", c.Credentials, CredentialsVault, CredentialsStatic)
	}
	v := c.Vault
	switch v.Auth.Method {
	case "", vaultclient.MethodToken, vaultclient.MethodKubernetes:
		if v.Auth.Method == vaultclient.MethodKubernetes && v.Auth.Role == "" {
			bad("vault.auth.role", "is required with method kubernetes")
		}
	case vaultclient.MethodAppRole:
		if v.Auth.RoleID == "" {
			bad("vault.auth.role_id", "is required with method approle")
		}
		if v.Auth.SecretIDFile == "" {
			bad("vault.auth.secret_id_file", "is required with method approle (a file holding the secret id)")
		}
	default:
		bad("vault.auth.method", "is %q: use token, approle or kubernetes", v.Auth.Method)
	}
	if v.CredentialTTL != 0 && time.Duration(v.CredentialTTL) < activities.MinTokenTTL {
		bad("vault.credential_ttl", "is %s: Kubernetes grants no token under %s", time.Duration(v.CredentialTTL), activities.MinTokenTTL)
	}
	for k, role := range v.Roles {
		if strings.Count(k, "/") > 1 || strings.TrimSpace(role) == "" {
			bad("vault.roles."+k, "keys are \"environment\" or \"environment/namespace\", values role names")
		}
	}
	return errs
}

// NewVaultClient builds the Vault client from the config and the VAULT_*
// environment. It does not contact Vault.
func (v VaultConfig) NewVaultClient(logger *slog.Logger) (*vaultclient.Client, error) {
	return vaultclient.New(vaultclient.Options{
		Addr:         v.Addr,
		Method:       v.Auth.Method,
		Mount:        v.Auth.Mount,
		TokenFile:    v.Auth.TokenFile,
		RoleID:       v.Auth.RoleID,
		SecretIDFile: v.Auth.SecretIDFile,
		Role:         v.Auth.Role,
		JWTFile:      v.Auth.JWTFile,
		Logger:       logger,
	})
}

// stepCredentials builds the source of the identity each step writes with,
// and what must run beside the worker for it (nil when nothing).
func stepCredentials(cfg Config, kube kubernetes.Interface, logger *slog.Logger) (activities.ClientSource, func(context.Context), error) {
	if cfg.Credentials == CredentialsStatic {
		logger.Warn("credentials: static — steps write with the worker's own identity; use Vault in production")
		return activities.StaticClient{Client: kube}, nil, nil
	}
	vc, err := cfg.Vault.NewVaultClient(logger)
	if err != nil {
		return nil, nil, fmt.Errorf("per-step credentials need Vault (or set credentials: static, not for production): %w", err)
	}
	cluster, err := cfg.stepCluster()
	if err != nil {
		return nil, nil, err
	}
	creds := &activities.VaultCredentials{
		Vault: vc,
		Mount: cfg.Vault.KubernetesMount,
		Roles: activities.RoleMap{
			Roles: cfg.Vault.Roles, NodeRoles: cfg.Vault.NodeRoles, ClusterNamespace: cfg.Vault.ClusterNamespace,
		},
		Cluster: cluster,
		TTL:     time.Duration(cfg.Vault.CredentialTTL),
		Logger:  logger,
	}
	logger.Info("credentials: per step from Vault", "vault", vc, "mount", creds.Mount, "api_server", cluster.Host)
	run := func(ctx context.Context) {
		go creds.RunRevoker(ctx, 10*time.Second)
		if err := vc.Run(ctx); err != nil {
			logger.Error("vault token renewal stopped", "error", err)
		}
	}
	return creds, run, nil
}

// stepCluster is the API server (address and CA, no credential) the minted
// credentials are for.
func (c Config) stepCluster() (*rest.Config, error) {
	if c.Vault.KubernetesHost != "" {
		cfg := &rest.Config{Host: c.Vault.KubernetesHost}
		if c.Vault.KubernetesCAFile != "" {
			ca, err := os.ReadFile(c.Vault.KubernetesCAFile)
			if err != nil {
				return nil, fmt.Errorf("config vault.kubernetes_ca_file: %w", err)
			}
			cfg.CAData = ca
		}
		return cfg, nil
	}
	kcfg, err := KubeConfig(c.Kubeconfig)
	if err != nil {
		return nil, errors.Join(errors.New("the API server for per-step credentials (vault.kubernetes_host, else the kubeconfig's)"), err)
	}
	return rest.AnonymousClientConfig(kcfg), nil
}
