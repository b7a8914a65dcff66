//go:build integration

// Package integration holds reins' end-to-end tests against real components:
// a Temporal dev server, a Kubernetes control plane (etcd, kube-apiserver,
// controller-manager, scheduler, kwok), and the reins worker. Run with
//
//	go test -tags integration ./integration/
//
// after scripts/setup.sh has built the tools.
package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"k8s.io/client-go/kubernetes"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/workflows"
)

// env is the stack shared by every test of the package (started once in
// TestMain: each component takes seconds to start).
type env struct {
	temporal *devstack.Temporal
	kube     *devstack.Kube
	kc       kubernetes.Interface
	client   sdkclient.Client
	// nats is the embedded NATS holding the audit stream.
	nats   *devstack.NATS
	dir    string
	logger *slog.Logger
	// vault is a Vault dev server configured by devstack.ConfigureVault
	// (vault_test.go); vaultSetup re-applies that after a restart.
	vault      *devstack.Vault
	vaultSetup *devstack.VaultSetup
}

var (
	stack env
	seq   atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := os.MkdirTemp("", "reins-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	started := time.Now()
	attrs := map[string]string{}
	for _, a := range workflows.SearchAttributes() {
		name, typ, _ := strings.Cut(a, "=")
		attrs[name] = typ
	}
	tmp, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{Dir: filepath.Join(dir, "temporal"), SearchAttributes: attrs, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start Temporal:", err)
		return 1
	}
	defer tmp.Stop()
	kube, err := devstack.StartKube(ctx, devstack.KubeOptions{Dir: filepath.Join(dir, "kube"), Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start Kubernetes:", err)
		return 1
	}
	defer kube.Stop()
	kc, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := sdkclient.Dial(sdkclient.Options{HostPort: tmp.Address, Namespace: tmp.Namespace, Logger: log.NewStructuredLogger(logger)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial Temporal:", err)
		return 1
	}
	defer c.Close()
	vault, vaultSetup, err := startVault(ctx, filepath.Join(dir, "vault"), kube, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start Vault:", err)
		return 1
	}
	defer vault.Stop()
	natsSrv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: filepath.Join(dir, "nats"), Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start NATS:", err)
		return 1
	}
	defer natsSrv.Stop()
	fmt.Fprintf(os.Stderr, "integration stack up in %s\n", time.Since(started).Round(time.Millisecond))
	stack = env{temporal: tmp, nats: natsSrv, kube: kube, kc: kc, client: c, dir: dir, logger: logger, vault: vault, vaultSetup: vaultSetup}
	return m.Run()
}

// unique returns a name no other test uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}
