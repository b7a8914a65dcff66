package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// VaultOptions configures StartVault. The zero value of every field but Dir
// is a working default.
type VaultOptions struct {
	// Dir holds the log (vault.log), from which the root token is redacted.
	// Dev mode keeps its state in memory. Required.
	Dir string
	// Port is the listener's port on 127.0.0.1; dev mode also binds the
	// cluster listener on Port+1. Default: a free port whose successor is
	// free too.
	Port int
	// RootToken is the dev root token's id. It is a secret: never logged.
	// Default: a random 128-bit token.
	RootToken string `json:"-"`
	// LogLevel is the server's log level: trace, debug, info, warn or error.
	// Default: "warn".
	LogLevel string
	// Timeout bounds the wait for /v1/sys/health. Default: 2 minutes.
	Timeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default: 10 seconds.
	StopTimeout time.Duration
	// Binary is the vault program to run. Default: FindBinary("vault").
	Binary string
	// Logger receives progress messages. Default: slog.Default().
	Logger *slog.Logger
}

// Vault is a Vault dev server. It can be stopped and started again on the
// same address with the same root token; dev mode keeps nothing across that,
// so whoever configured it (mounts, policies, roles) does so again.
type Vault struct {
	// Addr is the server's URL, http://127.0.0.1:port, as VAULT_ADDR wants it.
	Addr string
	// RootToken authenticates as root. A secret: never log it.
	RootToken string `json:"-"`
	// Dir and LogPath are where the log is.
	Dir     string
	LogPath string

	port int
	bin  string
	opts VaultOptions
	log  *slog.Logger

	mu        sync.Mutex
	proc      *process
	stopWatch func() bool
}

// StartVault starts `vault server -dev` on 127.0.0.1 and returns once
// /v1/sys/health reports it initialized, unsealed and active and the root
// token is accepted. It runs until Stop is called or ctx is cancelled.
func StartVault(ctx context.Context, opts VaultOptions) (*Vault, error) {
	dir, err := componentDir(opts.Dir, "VaultOptions.Dir")
	if err != nil {
		return nil, err
	}
	level := orDefault(opts.LogLevel, "warn")
	if !slices.Contains([]string{"trace", "debug", "info", "warn", "error"}, level) {
		return nil, fmt.Errorf("VaultOptions.LogLevel %q: use trace, debug, info, warn or error", opts.LogLevel)
	}
	opts.LogLevel = level
	bin := opts.Binary
	if bin == "" {
		if bin, err = FindBinary("vault"); err != nil {
			return nil, fmt.Errorf("start vault: %w", err)
		}
	}
	token := opts.RootToken
	if token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("start vault: generate root token: %w", err)
		}
		// Vault refuses custom token ids with dots.
		token = "devroot-" + hex.EncodeToString(b)
	}
	v := &Vault{RootToken: token, Dir: dir, bin: bin, opts: opts, log: loggerOr(opts.Logger)}
	for attempt := 1; ; attempt++ {
		v.port = opts.Port
		if v.port == 0 {
			// Dev mode also binds its cluster listener on the next port.
			if v.port, err = freePortPair(); err != nil {
				return nil, fmt.Errorf("start vault: %w", err)
			}
		}
		v.Addr = "http://127.0.0.1:" + strconv.Itoa(v.port)
		err := v.Start(ctx)
		if err == nil {
			return v, nil
		}
		if opts.Port != 0 || !errorsIsPortInUse(err) || attempt == portAttempts {
			return nil, err
		}
		v.log.Warn("devstack: vault lost a port race, retrying on a new port", "attempt", attempt)
	}
}

// Start starts the server again after Stop, on the same address with the
// same root token, and waits until it is ready. Its state is empty. The new
// server runs until Stop is called or ctx is cancelled. Start on a running
// server is an error.
func (v *Vault) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc != nil && !v.proc.exited() {
		return fmt.Errorf("start vault at %s: it is running; call Stop first, or Restart", v.Addr)
	}
	started := time.Now()
	proc, err := startProcess(procSpec{
		name: "vault", path: v.bin, dir: v.Dir,
		args: []string{
			"server", "-dev",
			"-dev-root-token-id=" + v.RootToken,
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(v.port),
			"-dev-no-store-token",
			"-log-level=" + v.opts.LogLevel,
		},
		// The token helper and the client read these; none may leak in.
		dropEnv:     []string{"VAULT_"},
		redact:      []string{v.RootToken},
		redactLines: []string{"Unseal Key:"},
	})
	if err != nil {
		return fmt.Errorf("start vault: %w", err)
	}
	v.proc, v.LogPath = proc, proc.logPath
	v.stopWatch = context.AfterFunc(ctx, func() { proc.stop(v.stopTimeout()) })
	deadline := time.Now().Add(orDefault(v.opts.Timeout, defaultTimeout))
	if err := waitReady(ctx, deadline, "vault at "+v.Addr, v.checkReady, proc); err != nil {
		v.stopWatch()
		proc.stop(v.stopTimeout())
		return fmt.Errorf("start vault: %w", err)
	}
	v.log.Info("devstack: vault ready", "addr", v.Addr, "took", time.Since(started).Round(time.Millisecond), "log", v.LogPath)
	return nil
}

// checkReady passes when the server is initialized, unsealed and active and
// accepts the root token.
func (v *Vault) checkReady(ctx context.Context) error {
	if err := httpGetOK(http.DefaultClient, v.Addr+"/v1/sys/health")(ctx); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+"/v1/auth/token/lookup-self", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		// The body may echo the token; leave it out.
		return errors.New("root token lookup: " + resp.Status)
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after StopTimeout) and waits
// for it to exit. Nothing holds the port while it is stopped; Start binds it
// again. Calling Stop on a stopped server is a no-op.
func (v *Vault) Stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil {
		return
	}
	v.stopWatch()
	v.proc.stop(v.stopTimeout())
}

// Restart stops the server and starts it again on the same address with the
// same root token; see Start.
func (v *Vault) Restart(ctx context.Context) error {
	v.Stop()
	return v.Start(ctx)
}

func (v *Vault) stopTimeout() time.Duration {
	return orDefault(v.opts.StopTimeout, defaultStopTimeout)
}

// String describes the server without its token, so that %v and %+v of a
// *Vault are safe to log.
func (v *Vault) String() string { return "vault dev server at " + v.Addr }

// GoString is String, for %#v.
func (v *Vault) GoString() string { return v.String() }

// LogValue keeps the token out of slog records.
func (v *Vault) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", v.Addr), slog.String("log", v.LogPath))
}
