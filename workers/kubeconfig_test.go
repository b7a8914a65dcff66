package workers

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKubeConfigRaisesClientGoRateLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := KubeConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || cfg.QPS != KubeQPS || cfg.Burst != KubeBurst {
		t.Fatalf("host %s, QPS %v, burst %d; want the kubeconfig's server with %d/%d", cfg.Host, cfg.QPS, cfg.Burst, KubeQPS, KubeBurst)
	}
	if _, err := KubeConfig(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing kubeconfig loaded")
	}
}
