package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/vaultclient"
	"github.com/reins-dev/reins/workers"
)

// startDevVault starts the Vault dev server of `reins dev` and configures it
// for reins against kube (devstack.ConfigureVault: the kubernetes secrets
// engine with the roles of deploy/vault-roles.yaml, transit with the codec
// key, the worker's policy, AppRole and Kubernetes auth). The root token goes
// to <dir>/vault/root-token (0600), never to the output.
func startDevVault(ctx context.Context, logger *slog.Logger, dir string, kube *devstack.Kube) (*devstack.Vault, *devstack.VaultSetup, error) {
	vdir := filepath.Join(dir, "vault")
	v, err := devstack.StartVault(ctx, devstack.VaultOptions{Dir: vdir, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	setup, err := devstack.ConfigureVault(ctx, devstack.VaultSetupOptions{Vault: v, Kube: kube, Dir: vdir, Logger: logger})
	if err == nil {
		err = os.WriteFile(devRootTokenFile(dir), []byte(v.RootToken+"\n"), 0o600)
	}
	if err != nil {
		v.Stop()
		return nil, nil, fmt.Errorf("configure the dev Vault: %w", err)
	}
	return v, setup, nil
}

func devRootTokenFile(dir string) string { return filepath.Join(dir, "vault", "root-token") }

// devSecurityConfig is the config of `reins dev` that this file owns.
type devSecurityConfig struct {
	Vault   workers.VaultConfig
	Codec   workers.CodecConfig
	Gateway workers.GatewayConfig
}

// devSecurity is the worker's Vault section in `reins dev` (per-step
// credentials, logging in with AppRole as a production worker would), the
// payload codec (Vault transit) and the gateway (a random token in
// <dir>/gateway-token, CORS for the Temporal UI).
func devSecurity(dir string, setup *devstack.VaultSetup, ui string, gatewayPort int) devSecurityConfig {
	v := workers.DefaultVaultConfig()
	v.Addr = setup.Addr
	v.Auth = workers.VaultAuthConfig{Method: vaultclient.MethodAppRole, RoleID: setup.AppRoleRoleID, SecretIDFile: setup.AppRoleSecretIDFile}
	origins := []string{ui}
	if u, err := url.Parse(ui); err == nil {
		origins = append(origins, "http://localhost:"+u.Port())
	}
	return devSecurityConfig{
		Vault: v,
		Codec: workers.CodecConfig{TransitKey: devstack.CodecTransitKey},
		Gateway: workers.GatewayConfig{
			Listen:      "127.0.0.1:" + strconv.Itoa(gatewayPort),
			TokenFile:   filepath.Join(dir, "gateway-token"),
			CORSOrigins: origins,
		},
	}
}

func devCodecEndpoint(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) + "/codec" }

// startDevGateway writes the gateway's token (kept across runs) and serves
// every door the config opens until ctx ends or stop is called; stop
// returns once the gateway no longer serves and its doors are drained.
func startDevGateway(ctx context.Context, cfg workers.Config, logger *slog.Logger) (stop func(), err error) {
	if _, err := os.Stat(cfg.Gateway.TokenFile); errors.Is(err, os.ErrNotExist) {
		token := make([]byte, 24)
		_, _ = rand.Read(token) // never fails (Go 1.24+ crashes instead)
		if err := os.WriteFile(cfg.Gateway.TokenFile, []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write the gateway token: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	srv, stopDoors, err := newGateway(ctx, cfg, logger)
	if err != nil {
		cancel()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		stopDoors()
		cancel()
		return nil, fmt.Errorf("gateway (--gateway-port): %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveGateway(ctx, srv, ln, logger)
		stopDoors()
	}()
	return func() { cancel(); <-done }, nil
}
