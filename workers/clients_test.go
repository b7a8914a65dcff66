package workers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reins-dev/reins/gateway"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "reins.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientsConfigLoads(t *testing.T) {
	tok, sum, err := gateway.NewClientToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(writeConfig(t, `
clients:
  - name: sre-agent
    kind: agent
    owner: alice@example.com
    token_sha256: `+sum+`
    rate: 5/s
    burst: 3
  - name: alice@example.com
    kind: human
    groups: [sre-oncall]
    token_sha256: `+gateway.HashToken("alice-token")+`
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients) != 2 || cfg.Clients[0].Owner != "alice@example.com" || cfg.Clients[1].Groups[0] != "sre-oncall" {
		t.Fatalf("clients %+v", cfg.Clients)
	}
	auth, err := cfg.Clients.Authenticator()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	p, err := auth.Authenticate(r)
	if err != nil || p.Name != "sre-agent" || p.Kind != gateway.KindAgent || p.Owner != "alice@example.com" {
		t.Errorf("authenticated %+v %v", p, err)
	}
	for i := range 3 {
		if ok, _ := auth.Allow("sre-agent"); !ok {
			t.Fatalf("call %d of burst 3 refused", i+1)
		}
	}
	if ok, _ := auth.Allow("sre-agent"); ok {
		t.Error("burst of 3 not enforced")
	}
}

func TestClientsConfigNamesEachBadField(t *testing.T) {
	h := gateway.HashToken("x")
	_, err := Load(writeConfig(t, `
clients:
  - {name: a, kind: agent, token_sha256: `+h+`, groups: [sre]}
  - {name: a, kind: human, token_sha256: `+gateway.HashToken("y")+`}
  - {name: c, kind: robot, token_sha256: not-hex}
  - {name: d, kind: agent, token_sha256: `+gateway.HashToken("z")+`, rate: 30/fortnight}
  - {name: e, kind: agent, cert_subject: spiffe://reins/e}
  - {name: f, kind: agent}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"config clients[0].groups", "config clients[1].name", "config clients[1].groups", "config clients[2].kind",
		"config clients[2].token_sha256", "config clients[3].rate", "config clients[4].cert_subject", "config clients[5]: client \"f\" has no credential",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// writePEM writes a PEM block to dir/name.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGatewayTLSVerifiesClientCertificates(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clients CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ip net.IP) (*x509.Certificate, []byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert, der, key
	}
	_, srvDER, srvKey := issue("gateway", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cfgTLS := GatewayTLS{
		CertFile:     writePEM(t, dir, "gw.crt", "CERTIFICATE", srvDER),
		KeyFile:      writePEM(t, dir, "gw.key", "EC PRIVATE KEY", srvKeyDER),
		ClientCAFile: writePEM(t, dir, "ca.crt", "CERTIFICATE", caDER),
	}
	clients := ClientsConfig{{Name: "fixer", Kind: "agent", CertSubject: "fixer"}}
	if errs := cfgTLS.validate(clients); len(errs) > 0 {
		t.Fatal(errs)
	}
	auth, err := clients.Authenticator()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := cfgTLS.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(p.Name))
	}))
	srv.TLS = tlsCfg
	srv.StartTLS()
	defer srv.Close()

	_, cliDER, cliKey := issue("fixer", x509.ExtKeyUsageClientAuth, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	resp, err := client(tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("client certificate: %s", resp.Status)
	}
	// No certificate: the handshake succeeds (token clients), the call is refused.
	resp, err = client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no certificate: %s", resp.Status)
	}

	if errs := (GatewayTLS{CertFile: "x"}).validate(clients); len(errs) != 2 ||
		!strings.Contains(errs[0].Error(), "gateway.tls") || !strings.Contains(errs[1].Error(), "clients[0].cert_subject") {
		t.Errorf("half a TLS config and a certificate client without CA: %v", errs)
	}
	if cfg, err := (GatewayTLS{}).Config(); cfg != nil || err != nil {
		t.Errorf("TLS off: %v %v", cfg, err)
	}
	if _, err := (GatewayTLS{CertFile: cfgTLS.CertFile, KeyFile: cfgTLS.KeyFile, ClientCAFile: cfgTLS.KeyFile}).Config(); err == nil || !strings.Contains(err.Error(), "client_ca_file") {
		t.Errorf("a client CA file without certificates: %v", err)
	}
}
