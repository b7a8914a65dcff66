package devstack

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestCertChainVerifies(t *testing.T) {
	now := time.Now()
	ca, err := newCA("test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.issueServer("127.0.0.1", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, now)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.issueClient("alice", []string{"system:masters"}, now)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := server.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := server.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com", CurrentTime: now}); err == nil {
		t.Error("serving certificate verifies for example.com; want it limited to loopback names")
	}
	if _, err := client.cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}
	if _, err := client.cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verifies for server auth; want client auth only")
	}
	if got := client.cert.Subject; got.CommonName != "alice" || !slices.Equal(got.Organization, []string{"system:masters"}) {
		t.Errorf("client subject = %v, want CN=alice O=system:masters", got)
	}
	other, err := newCA("other-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(other.cert)
	if _, err := server.cert.Verify(x509.VerifyOptions{Roots: otherRoots, DNSName: "localhost", CurrentTime: now}); err == nil {
		t.Error("serving certificate verifies against an unrelated CA")
	}
	// The PEM forms load as a TLS key pair.
	if _, err := tls.X509KeyPair(server.certPEM, server.keyPEM); err != nil {
		t.Errorf("serving PEM pair does not load: %v", err)
	}
}

func TestServiceAccountKey(t *testing.T) {
	privPEM, pubPEM, err := newServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	privBlock, _ := pem.Decode(privPEM)
	pubBlock, _ := pem.Decode(pubPEM)
	if privBlock == nil || privBlock.Type != "PRIVATE KEY" || pubBlock == nil || pubBlock.Type != "PUBLIC KEY" {
		t.Fatalf("PEM blocks: %v %v; want PRIVATE KEY and PUBLIC KEY", privBlock, pubBlock)
	}
	priv, err := x509.ParsePKCS8PrivateKey(privBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(pubBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, ok1 := priv.(*ecdsa.PrivateKey)
	ecPub, ok2 := pub.(*ecdsa.PublicKey)
	if !ok1 || !ok2 {
		t.Fatalf("keys are %T and %T; want ECDSA", priv, pub)
	}
	if !ecPub.Equal(ecPriv.Public()) {
		t.Error("public key does not match the private key")
	}
}

// TestAdminKubeconfigAuthenticates serves TLS with a CA-signed certificate
// that demands a client certificate from the same CA, and checks that the
// written kubeconfig, loaded back, gets through.
func TestAdminKubeconfigAuthenticates(t *testing.T) {
	dir := t.TempDir()
	pki, err := writeKubePKI(filepath.Join(dir, "pki"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pki.caFile, pki.caKeyFile, pki.servingCert, pki.servingKey, pki.saKeyFile, pki.saPubFile, pki.frontProxyCAFile, pki.frontProxyCertFile, pki.frontProxyKeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	servingPair, err := tls.LoadX509KeyPair(pki.servingCert, pki.servingKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(pki.ca.cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.TLS.PeerCertificates[0]
		fmt.Fprintf(w, "%s/%s", c.Subject.CommonName, strings.Join(c.Subject.Organization, ","))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{servingPair}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	path := filepath.Join(dir, "kubeconfig")
	cfg, err := writeAdminKubeconfig(path, srv.URL, pki.ca.certPEM, pki.admin)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != srv.URL {
		t.Errorf("Host = %q, want %q", cfg.Host, srv.URL)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("kubeconfig client did not get through client-certificate TLS: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := AdminUser + "/system:masters"; string(body) != want {
		t.Errorf("server saw %q, want %q", body, want)
	}
}

func TestFindBinary(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	t.Setenv("HOME", empty)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(empty, "cache"))
	bin := t.TempDir()
	t.Setenv(EnvBin, bin)

	_, err := FindBinary("etcd")
	if err == nil {
		t.Fatal("FindBinary found etcd in empty folders")
	}
	for _, want := range []string{`"etcd"`, "scripts/setup.sh", bin, EnvBin} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}

	// Not executable: still not found.
	writeFile(t, filepath.Join(bin, "etcd"), 0o644)
	if _, err := FindBinary("etcd"); err == nil {
		t.Error("FindBinary accepted a file that is not executable")
	}
	writeFile(t, filepath.Join(bin, "etcd"), 0o755)
	if got, err := FindBinary("etcd"); err != nil || got != filepath.Join(bin, "etcd") {
		t.Errorf("FindBinary = %q, %v; want the one in %s", got, err, EnvBin)
	}

	// The user cache folder is next.
	t.Setenv(EnvBin, "")
	cached := filepath.Join(empty, "cache", "reins", "bin", "kwok")
	writeFile(t, cached, 0o755)
	if got, err := FindBinary("kwok"); err != nil || got != cached {
		t.Errorf("FindBinary = %q, %v; want %s", got, err, cached)
	}

	// PATH wins over both.
	onPath := t.TempDir()
	writeFile(t, filepath.Join(onPath, "kwok"), 0o755)
	t.Setenv("PATH", onPath)
	if got, err := FindBinary("kwok"); err != nil || got != filepath.Join(onPath, "kwok") {
		t.Errorf("FindBinary = %q, %v; want the one on PATH", got, err)
	}
}

func TestKwokStagesDir(t *testing.T) {
	root := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(root, "nocache"))
	t.Setenv(EnvBin, filepath.Join(root, "bin"))
	_, err := KwokStagesDir()
	if err == nil || !strings.Contains(err.Error(), "scripts/setup.sh") {
		t.Errorf("KwokStagesDir error = %v; want one that says to run scripts/setup.sh", err)
	}
	stages := filepath.Join(root, "kwok-stages")
	writeFile(t, filepath.Join(stages, "pod-ready.yaml"), 0o644)
	if got, err := KwokStagesDir(); err != nil || got != stages {
		t.Errorf("KwokStagesDir = %q, %v; want %s", got, err, stages)
	}
}

func TestTemporalArgs(t *testing.T) {
	args, err := temporalFixedArgs("/d", TemporalOptions{
		Namespace:        "reins",
		SearchAttributes: map[string]string{"B": "Int", "A": "Keyword"},
		DynamicConfig:    map[string]any{"x.y": true, "a.b": "s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{
		"--headless", "--log-level warn", "--ip 127.0.0.1", "--db-filename /d/temporal.db", "--namespace reins",
		"--search-attribute A=Keyword --search-attribute B=Int",
		`--dynamic-config-value a.b="s" --dynamic-config-value x.y=true`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	args, err = temporalFixedArgs("/d", TemporalOptions{UI: true, UICodecEndpoint: "http://127.0.0.1:9/codec"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, " "); strings.Contains(got, "--headless") || !strings.Contains(got, "--ui-codec-endpoint http://127.0.0.1:9/codec") {
		t.Errorf("args with UI = %q", got)
	}
	for _, bad := range []TemporalOptions{
		{SearchAttributes: map[string]string{"A": "String"}},
		{SearchAttributes: map[string]string{"1A": "Int"}},
		{SearchAttributes: map[string]string{"A=B": "Int"}},
		{LogLevel: "loud"},
		{DynamicConfig: map[string]any{"k": func() {}}},
	} {
		if _, err := temporalFixedArgs("/d", bad); err == nil {
			t.Errorf("temporalFixedArgs(%+v) accepted bad options", bad)
		}
	}
}

func TestStartRequiresDir(t *testing.T) {
	ctx := t.Context()
	if _, err := StartTemporal(ctx, TemporalOptions{}); err == nil || !strings.Contains(err.Error(), "TemporalOptions.Dir") {
		t.Errorf("StartTemporal without Dir: %v", err)
	}
	if _, err := StartKube(ctx, KubeOptions{}); err == nil || !strings.Contains(err.Error(), "KubeOptions.Dir") {
		t.Errorf("StartKube without Dir: %v", err)
	}
	if _, err := StartVault(ctx, VaultOptions{}); err == nil || !strings.Contains(err.Error(), "VaultOptions.Dir") {
		t.Errorf("StartVault without Dir: %v", err)
	}
}

func TestEarlyExitReportsLogTail(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess(procSpec{name: "crash", path: "/bin/sh", dir: dir,
		args: []string{"-c", "echo starting; echo 'bind: address already in use' >&2; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(t.Context(), time.Now().Add(time.Minute), "crash", func(context.Context) error {
		return errors.New("never ready")
	}, p)
	if err == nil {
		t.Fatal("waitReady passed for a process that exited")
	}
	for _, want := range []string{"crash exited", "exit status 3", "starting", filepath.Join(dir, "crash.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, errPortInUse) {
		t.Errorf("error %q does not wrap errPortInUse", err)
	}
}

func TestWaitReadyDeadline(t *testing.T) {
	p, err := startProcess(procSpec{name: "idle", path: "/bin/sh", dir: t.TempDir(),
		args: []string{"-c", "echo idling; exec sleep 600"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop(time.Second)
	checks := 0
	err = waitReady(t.Context(), time.Now().Add(500*time.Millisecond), "idle", func(context.Context) error {
		checks++
		return errors.New("still starting")
	}, p)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still starting") {
		t.Errorf("err = %v; want a deadline error carrying the last check", err)
	}
	if checks < 2 {
		t.Errorf("ready was checked %d times; want it polled", checks)
	}
}

// TestStopKillsGroup checks that Stop reaches the child's own children and
// that a child ignoring SIGTERM is killed after the grace period.
func TestStopKillsGroup(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess(procSpec{name: "stubborn", path: "/bin/sh", dir: dir,
		args: []string{"-c", `trap '' TERM; sleep 600 & echo "child $!"; while :; do wait; done`}})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	err = waitReady(t.Context(), time.Now().Add(30*time.Second), "child pid", func(context.Context) error {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "child "); ok {
				child, err = strconv.Atoi(strings.TrimSpace(rest))
				return err
			}
		}
		return errors.New("no pid yet")
	}, p)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.stop(300 * time.Millisecond)
	if !p.exited() {
		t.Fatal("stop returned before the process exited")
	}
	var exitErr interface{ Sys() any }
	if errors.As(p.waitErr, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("exit %v; want killed by SIGKILL after ignoring SIGTERM", p.waitErr)
		}
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("stop took %s; want it to wait the grace period first", took)
	}
	// The grandchild was in the group: it is gone (or a zombie about to be reaped by init).
	err = waitReady(t.Context(), time.Now().Add(10*time.Second), "grandchild gone", func(context.Context) error {
		if err := syscall.Kill(child, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err == nil && strings.Contains(string(stat), ") Z ") {
			return nil
		}
		return fmt.Errorf("pid %d still alive", child)
	})
	if err != nil {
		t.Error(err)
	}
	p.stop(time.Second) // a second stop is a no-op
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, port := range ports {
		if seen[port] {
			t.Errorf("port %d returned twice", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Errorf("port %d is not bindable: %v", port, err)
			continue
		}
		l.Close()
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tail := logTail(path)
	if !strings.HasSuffix(tail, "line 999") || !strings.HasPrefix(tail, "line ") || len(tail) > 4096 {
		t.Errorf("tail = %q...; want whole last lines ending in line 999, at most 4 KiB", tail[:min(len(tail), 40)])
	}
	if got := logTail(filepath.Join(t.TempDir(), "missing.log")); !strings.Contains(got, "cannot read log") {
		t.Errorf("tail of a missing log = %q", got)
	}
}

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestRedactWriter(t *testing.T) {
	var out strings.Builder
	w := newRedactWriter(&out, []string{"s3cr3t-token"}, []string{"Unseal Key:"})
	for _, chunk := range []string{"Root Token: s3cr", "3t-token\nUnseal Key: abc", "def\nok s3cr3t-token", " end"} {
		if _, err := io.WriteString(w, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "s3cr3t") || strings.Contains(got, "abcdef") {
		t.Errorf("secret reached the output: %q", got)
	}
	want := "Root Token: [redacted]\nUnseal Key: [redacted]\nok [redacted] end"
	if got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestVaultNeverPrintsToken(t *testing.T) {
	v := &Vault{Addr: "http://127.0.0.1:1", RootToken: "very-secret"}
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), v.LogValue().String()} {
		if strings.Contains(s, "very-secret") {
			t.Errorf("formatted Vault shows the token: %s", s)
		}
	}
}
