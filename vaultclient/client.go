// Package vaultclient is reins' Vault client: github.com/hashicorp/vault/api
// configured from the standard environment (VAULT_ADDR, VAULT_TOKEN,
// VAULT_CACERT, …), authenticated the standard ways (a token for
// development, AppRole or Kubernetes auth for production), with its own
// token kept alive by the API's lifetime watcher and logged in again when it
// is lost (expired, revoked, or Vault restarted).
//
// Tokens and secret ids are never logged and never part of an error.
package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Auth methods.
const (
	// MethodToken uses a token as it is: VAULT_TOKEN, or Options.TokenFile.
	MethodToken = "token"
	// MethodAppRole logs in with a role id and a secret id.
	MethodAppRole = "approle"
	// MethodKubernetes logs in with the pod's ServiceAccount token.
	MethodKubernetes = "kubernetes"
)

// DefaultKubernetesJWTFile is where Kubernetes mounts a pod's ServiceAccount token.
const DefaultKubernetesJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Options configures New. The zero value of each field is its default.
type Options struct {
	// Addr is Vault's URL. Default: $VAULT_ADDR (vaultapi.DefaultConfig),
	// else https://127.0.0.1:8200.
	Addr string
	// Method is how reins authenticates: MethodToken, MethodAppRole or
	// MethodKubernetes. Default: MethodToken.
	Method string
	// Mount is the auth method's mount path. Default: the method's name.
	Mount string
	// TokenFile holds the token for MethodToken. Default: $VAULT_TOKEN.
	TokenFile string
	// RoleID is the AppRole role id (not a secret on its own).
	RoleID string
	// SecretIDFile holds the AppRole secret id.
	SecretIDFile string
	// Role is the Kubernetes auth role.
	Role string
	// JWTFile holds the ServiceAccount token for MethodKubernetes.
	// Default: DefaultKubernetesJWTFile.
	JWTFile string
	// MaxRetries is how often the API client retries a request that failed
	// with a 5xx or a connection error (never a WriteOnce). Default:
	// vaultapi's (2, or $VAULT_MAX_RETRIES); negative means none.
	MaxRetries int
	// Timeout bounds each request. Default: 30 seconds.
	Timeout time.Duration
	// Logger receives token lifecycle messages (never the token).
	// Default: slog.Default().
	Logger *slog.Logger
}

// Client is an authenticated Vault client. It is safe for concurrent use.
type Client struct {
	api  *vaultapi.Client
	opts Options
	log  *slog.Logger

	mu sync.Mutex
	// auth is the last login's auth info and session the API client that
	// sends its token (api itself carries none); both nil when no valid
	// login is known. A session is never changed once published, so a
	// request knows exactly which token it sent.
	auth    *vaultapi.SecretAuth
	session *vaultapi.Client
	renewed chan struct{} // closed and replaced at each login
}

// New builds a client. It does not contact Vault: the first request logs in
// (for AppRole and Kubernetes), so that a worker starts while Vault is down
// and its steps wait for Vault, retrying, instead of the worker failing.
func New(opts Options) (*Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client settings (VAULT_* variables): %w", cfg.Error)
	}
	if opts.Addr != "" {
		cfg.Address = opts.Addr
	}
	if opts.Timeout > 0 {
		cfg.Timeout = opts.Timeout
	} else {
		cfg.Timeout = 30 * time.Second
	}
	switch {
	case opts.MaxRetries < 0:
		cfg.MaxRetries = 0
	case opts.MaxRetries > 0:
		cfg.MaxRetries = opts.MaxRetries
	}
	cfg.CheckRetry = checkRetry
	api, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", cfg.Address, err)
	}
	if opts.Method == "" {
		opts.Method = MethodToken
	}
	if opts.Mount == "" {
		opts.Mount = opts.Method
	}
	c := &Client{api: api, opts: opts, log: opts.Logger, renewed: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	switch opts.Method {
	case MethodToken:
		if opts.TokenFile != "" {
			tok, err := readSecretFile(opts.TokenFile, "vault token_file")
			if err != nil {
				return nil, err
			}
			api.SetToken(tok)
		}
		if api.Token() == "" {
			return nil, errors.New("vault auth method token: no token (set VAULT_TOKEN or vault.auth.token_file)")
		}
	case MethodAppRole:
		if opts.RoleID == "" || opts.SecretIDFile == "" {
			return nil, errors.New("vault auth method approle: set vault.auth.role_id and vault.auth.secret_id_file")
		}
		api.ClearToken()
	case MethodKubernetes:
		if opts.Role == "" {
			return nil, errors.New("vault auth method kubernetes: set vault.auth.role")
		}
		if c.opts.JWTFile == "" {
			c.opts.JWTFile = DefaultKubernetesJWTFile
		}
		api.ClearToken()
	default:
		return nil, fmt.Errorf("vault auth method %q: use token, approle or kubernetes", opts.Method)
	}
	return c, nil
}

// Addr is Vault's address.
func (c *Client) Addr() string { return c.api.Address() }

// String describes the client without its token.
func (c *Client) String() string {
	return "vault client for " + c.api.Address() + " (" + c.opts.Method + ")"
}

// LogValue keeps the token out of slog records.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.api.Address()), slog.String("method", c.opts.Method))
}

func (c *Client) loginMethod() bool { return c.opts.Method != MethodToken }

// Write sends a write (PUT) to path, logging in first when needed. When a
// login-based client is refused with 403 (its token may have been lost: Vault
// restarted, the token was revoked), it logs in again and tries once more.
// The API client repeats a write that failed with a 5xx or a connection
// error (Options.MaxRetries): use WriteOnce for a write that creates
// something.
func (c *Client) Write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	return c.do(ctx, func(api *vaultapi.Client) (*vaultapi.Secret, error) {
		return api.Logical().WriteWithContext(ctx, path, data)
	})
}

// WriteOnce sends a write like Write, except that the API client never
// repeats it after a 5xx or a connection error: Vault may have done the
// write before failing to answer, and a write that creates something (a
// lease, a token) would then create it twice, the first one lost. The caller
// decides whether to try again (an activity does, under Temporal's retry
// policy). A 403 is still answered by logging in again and sending the write
// once more: Vault refused it, so it did nothing. Logins are retried as
// usual.
func (c *Client) WriteOnce(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	once := context.WithValue(ctx, noRetryKey{}, true)
	return c.do(ctx, func(api *vaultapi.Client) (*vaultapi.Secret, error) {
		return api.Logical().WriteWithContext(once, path, data)
	})
}

// Read sends a read (GET) to path, like Write.
func (c *Client) Read(ctx context.Context, path string) (*vaultapi.Secret, error) {
	return c.do(ctx, func(api *vaultapi.Client) (*vaultapi.Secret, error) { return api.Logical().ReadWithContext(ctx, path) })
}

// List sends a LIST to path, like Write.
func (c *Client) List(ctx context.Context, path string) (*vaultapi.Secret, error) {
	return c.do(ctx, func(api *vaultapi.Client) (*vaultapi.Secret, error) { return api.Logical().ListWithContext(ctx, path) })
}

// noRetryKey marks the context of a request the API client must not repeat.
type noRetryKey struct{}

// checkRetry is vaultapi's retry policy, except that a request sent by
// WriteOnce is never repeated.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, err := vaultapi.DefaultRetryPolicy(ctx, resp, err)
	if ctx.Value(noRetryKey{}) != nil {
		return false, err
	}
	return retry, err
}

func (c *Client) do(ctx context.Context, call func(*vaultapi.Client) (*vaultapi.Secret, error)) (*vaultapi.Secret, error) {
	api, token, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	s, err := call(api)
	if err == nil || !c.loginMethod() || StatusCode(err) != http.StatusForbidden {
		return s, err
	}
	// Refused: the token may be lost. Forget it (not a newer one another
	// request has logged in for meanwhile) and try once more.
	c.forget(token)
	if api, _, err = c.current(ctx); err != nil {
		return nil, err
	}
	return call(api)
}

// forget drops the login whose token is token, if it is still the current
// one, so that the next request logs in again. A newer login, which another
// request refused with the old token has already made, is kept.
func (c *Client) forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.auth != nil && c.auth.ClientToken == token {
		c.auth, c.session = nil, nil
	}
}

// current returns the API client to send a request with and the token it
// sends ("" for MethodToken, whose token never changes), logging in first
// when a login-based client has no token.
func (c *Client) current(ctx context.Context) (*vaultapi.Client, string, error) {
	if !c.loginMethod() {
		return c.api, "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.auth == nil {
		if err := c.loginLocked(ctx); err != nil {
			return nil, "", err
		}
	}
	return c.session, c.auth.ClientToken, nil
}

func (c *Client) loginLocked(ctx context.Context) error {
	var data map[string]any
	switch c.opts.Method {
	case MethodAppRole:
		secretID, err := readSecretFile(c.opts.SecretIDFile, "vault secret_id_file")
		if err != nil {
			return err
		}
		data = map[string]any{"role_id": c.opts.RoleID, "secret_id": secretID}
	case MethodKubernetes:
		jwt, err := readSecretFile(c.opts.JWTFile, "vault kubernetes jwt_file")
		if err != nil {
			return err
		}
		data = map[string]any{"role": c.opts.Role, "jwt": jwt}
	}
	// Log in with a clone that carries no token (a stale one must not be
	// sent); it becomes the session that sends the new token.
	login, err := c.api.CloneWithHeaders()
	if err != nil {
		return fmt.Errorf("vault login: %w", err)
	}
	login.ClearToken()
	path := "auth/" + strings.Trim(c.opts.Mount, "/") + "/login"
	s, err := login.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return fmt.Errorf("vault login (%s at %s): %w", c.opts.Method, path, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return fmt.Errorf("vault login (%s at %s): the response has no token", c.opts.Method, path)
	}
	login.SetToken(s.Auth.ClientToken)
	c.auth, c.session = s.Auth, login
	close(c.renewed)
	c.renewed = make(chan struct{})
	c.log.Info("vault: logged in", "method", c.opts.Method, "mount", c.opts.Mount, "ttl", time.Duration(s.Auth.LeaseDuration)*time.Second, "renewable", s.Auth.Renewable)
	return nil
}

// Run keeps the client's token alive until ctx ends: the lifetime watcher
// renews it; when it can no longer be renewed (max TTL, revoked, Vault
// restarted) a login-based client logs in again, with backoff while Vault is
// unreachable. A token given as it is (MethodToken) is renewed while it is
// renewable; a root or non-renewable token needs nothing.
func (c *Client) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		secret, err := c.renewable(ctx)
		if err != nil {
			c.log.Warn("vault: token not ready; retrying", "error", err, "in", backoff)
			if !Wait(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		if secret == nil {
			if !c.loginMethod() {
				<-ctx.Done() // nothing to renew
				break
			}
			// Wait for a new login before watching again.
			c.mu.Lock()
			ch := c.renewed
			c.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-ch:
			}
			continue
		}
		c.watch(ctx, secret)
	}
	return nil
}

// renewable returns the auth to watch, or nil when there is none to renew.
func (c *Client) renewable(ctx context.Context) (*vaultapi.Secret, error) {
	if c.loginMethod() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.auth == nil {
			if err := c.loginLocked(ctx); err != nil {
				return nil, err
			}
		}
		if !c.auth.Renewable {
			return nil, nil
		}
		return &vaultapi.Secret{Auth: c.auth}, nil
	}
	self, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up own token: %w", err)
	}
	if ok, _ := self.TokenIsRenewable(); !ok {
		return nil, nil
	}
	ttl, _ := self.TokenTTL()
	s, err := c.api.Auth().Token().RenewSelfWithContext(ctx, int(ttl.Seconds()))
	if err != nil {
		return nil, fmt.Errorf("renew own token: %w", err)
	}
	return s, nil
}

// watch runs one lifetime watcher until the token can no longer be renewed.
func (c *Client) watch(ctx context.Context, secret *vaultapi.Secret) {
	w, err := c.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		c.log.Error("vault: cannot watch own token", "error", err)
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.DoneCh():
			if err != nil {
				c.log.Warn("vault: own token could not be renewed; logging in again", "error", err)
			} else {
				c.log.Info("vault: own token reached its max TTL; logging in again")
			}
			if c.loginMethod() {
				c.forget(secret.Auth.ClientToken)
			}
			return
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault: own token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		}
	}
}

// StatusCode is the HTTP status of a Vault response error, or 0 when err is
// not one (a connection error, say).
func StatusCode(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// Retryable reports whether a failed Vault request may succeed when tried
// again: Vault unreachable, sealed, standby, throttled or failing (5xx, 429,
// 412). 400, 403 and 404 are final: the request or its permissions are wrong.
func Retryable(err error) bool {
	switch code := StatusCode(err); {
	case code == 0:
		return !errors.Is(err, context.Canceled)
	case code == http.StatusTooManyRequests, code == http.StatusPreconditionFailed, code >= 500:
		return true
	}
	return false
}

func readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return s, nil
}

// Wait waits d, or until ctx ends; it reports whether the full wait passed.
// Callers retrying Vault (this package and the credential activities) back
// off with it.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
