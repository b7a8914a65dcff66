package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func mustHash(t testing.TB, token string) string {
	t.Helper()
	return HashToken(token)
}

func TestClientsAuthenticateByToken(t *testing.T) {
	clients, err := NewClients([]Client{
		{Principal: Principal{Name: "fixer", Kind: KindAgent, Owner: "alice@example.com"}, TokenSHA256: mustHash(t, "fixer-token")},
		{Principal: Principal{Name: "oncall@example.com", Kind: KindHuman, Groups: []string{"sre"}}, TokenSHA256: mustHash(t, "oncall-token")},
		{Principal: Principal{Name: "mtls-only", Kind: KindAgent}, CertSubject: "mtls-only"},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := func(auth string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	for auth, want := range map[string]string{
		"Bearer fixer-token":    "fixer",
		"bearer fixer-token":    "fixer",
		"Bearer  oncall-token ": "oncall@example.com",
	} {
		p, err := clients.Authenticate(req(auth))
		if err != nil || p.Name != want {
			t.Errorf("%q: %+v %v, want %s", auth, p, err, want)
		}
	}
	p, _ := clients.Authenticate(req("Bearer fixer-token"))
	if p.Kind != KindAgent || p.Owner != "alice@example.com" {
		t.Errorf("fixer's principal %+v", p)
	}
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic Zml4ZXI6eA==", "fixer-token",
		"Bearer " + strings.Repeat("x", maxTokenBytes+1), "Bearer " + strings.Repeat("\x00", 32)} {
		if p, err := clients.Authenticate(req(auth)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%q authenticated as %+v (%v)", auth, p, err)
		} else if strings.Contains(err.Error(), "fixer-token") {
			t.Errorf("error reveals a token: %v", err)
		}
	}
}

func TestNewClientsRefusesBadClients(t *testing.T) {
	h := mustHash(t, "a")
	for _, c := range []struct {
		name   string
		list   []Client
		fields []string
	}{
		{"duplicate names", []Client{
			{Principal: Principal{Name: "a", Kind: KindAgent}, TokenSHA256: h},
			{Principal: Principal{Name: "a", Kind: KindAgent}, TokenSHA256: mustHash(t, "b")}}, []string{"clients[1].name"}},
		{"shared token", []Client{
			{Principal: Principal{Name: "a", Kind: KindAgent}, TokenSHA256: h},
			{Principal: Principal{Name: "b", Kind: KindAgent}, TokenSHA256: h}}, []string{"clients[1].token_sha256"}},
		{"shared subject", []Client{
			{Principal: Principal{Name: "a", Kind: KindAgent}, CertSubject: "x"},
			{Principal: Principal{Name: "b", Kind: KindAgent}, CertSubject: "x"}}, []string{"clients[1].cert_subject"}},
		{"bad name, kind, hash", []Client{{Principal: Principal{Name: "a b", Kind: "robot"}, TokenSHA256: "zz"}},
			[]string{"clients[0].name", "clients[0].kind", "clients[0].token_sha256"}},
		{"a token instead of its hash", []Client{{Principal: Principal{Name: "a", Kind: KindAgent}, TokenSHA256: "reins_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}},
			[]string{"clients[0].token_sha256"}},
		{"no credential", []Client{{Principal: Principal{Name: "a", Kind: KindAgent}}}, []string{"clients[0]: client \"a\" has no credential"}},
		{"agent with groups", []Client{{Principal: Principal{Name: "a", Kind: KindAgent, Groups: []string{"sre"}}, TokenSHA256: h}}, []string{"clients[0].groups"}},
		{"human without groups, with owner", []Client{{Principal: Principal{Name: "a@example.com", Kind: KindHuman, Owner: "b"}, TokenSHA256: h}},
			[]string{"clients[0].groups", "clients[0].owner"}},
		// People are named by e-mail, as Slack knows approvers: the
		// requester and owner exclusions must recognize them there.
		{"human not named by e-mail", []Client{{Principal: Principal{Name: "dana", Kind: KindHuman, Groups: []string{"sre"}}, TokenSHA256: h}},
			[]string{`clients[0].name "dana": name a human by their e-mail address`}},
		{"owner not named by e-mail", []Client{{Principal: Principal{Name: "a", Kind: KindAgent, Owner: "dana"}, TokenSHA256: h}},
			[]string{`clients[0].owner "dana": name the agent's owner by their e-mail address`}},
		{"bad rate and burst", []Client{
			{Principal: Principal{Name: "a", Kind: KindAgent}, TokenSHA256: h, Rate: "-1/m", Burst: -1},
			{Principal: Principal{Name: "b", Kind: KindAgent}, TokenSHA256: mustHash(t, "b"), Rate: "3/fortnight"},
			{Principal: Principal{Name: "c", Kind: KindAgent}, TokenSHA256: mustHash(t, "c"), Rate: "30"}},
			[]string{"clients[0].rate", "clients[0].burst", "clients[1].rate", "clients[2].rate"}},
	} {
		_, err := NewClients(c.list)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, f := range c.fields {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("%s: error %q does not name %s", c.name, err, f)
			}
		}
	}
}

func TestClientsRateLimit(t *testing.T) {
	clients, err := NewClients([]Client{
		{Principal: Principal{Name: "slow", Kind: KindAgent}, TokenSHA256: mustHash(t, "slow"), Rate: "1/m", Burst: 2},
		{Principal: Principal{Name: "default", Kind: KindAgent}, TokenSHA256: mustHash(t, "default")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, _ := clients.Allow("slow"); !ok {
			t.Fatalf("call %d of a burst of 2 refused", i+1)
		}
	}
	ok, wait := clients.Allow("slow")
	if ok || wait <= 50*time.Second || wait > time.Minute {
		t.Errorf("third call: ok=%v retry after %s, want refused for about a minute", ok, wait)
	}
	// The refused call did not use up budget: the wait stays the same.
	if _, again := clients.Allow("slow"); again > wait {
		t.Errorf("a refused call consumed budget: wait %s then %s", wait, again)
	}
	for i := range DefaultBurst {
		if ok, _ := clients.Allow("default"); !ok {
			t.Fatalf("default burst: call %d refused", i+1)
		}
	}
	if ok, _ := clients.Allow("default"); ok {
		t.Errorf("call %d allowed beyond the default burst", DefaultBurst+1)
	}
	if ok, _ := clients.Allow("stranger"); ok {
		t.Error("an unknown client was allowed")
	}
}

func TestNewClientToken(t *testing.T) {
	tok, sum, err := NewClientToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, _, _ := NewClientToken()
	if !strings.HasPrefix(tok, tokenPrefix) || len(tok) < 40 || tok == tok2 || sum != HashToken(tok) || len(sum) != 64 {
		t.Fatalf("token %q hash %q (second token %q)", tok, sum, tok2)
	}
	clients, err := NewClients([]Client{{Principal: Principal{Name: "bot", Kind: KindAgent}, TokenSHA256: sum}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if p, err := clients.Authenticate(r); err != nil || p.Name != "bot" {
		t.Errorf("new token: %+v %v", p, err)
	}
}

// testCA issues certificates for mTLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reins test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return testCA{cert: cert, key: key, pool: pool}
}

// client issues a client certificate with common name cn and URI SANs.
func (ca testCA) client(t testing.TB, cn string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestClientsAuthenticateByCertificate(t *testing.T) {
	ca := newTestCA(t)
	clients, err := NewClients([]Client{
		{Principal: Principal{Name: "fixer", Kind: KindAgent}, CertSubject: "fixer"},
		{Principal: Principal{Name: "spiffe-bot", Kind: KindAgent}, CertSubject: "spiffe://reins.test/agent/bot"},
		{Principal: Principal{Name: "tokened", Kind: KindAgent}, TokenSHA256: mustHash(t, "tok")},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := clients.Authenticate(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(p.Name))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool}
	srv.StartTLS()
	defer srv.Close()

	call := func(cert *tls.Certificate, bearer string) (int, string) {
		t.Helper()
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		c = &http.Client{Transport: tr}
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	fixer := ca.client(t, "fixer")
	bot := ca.client(t, "unrelated-cn", "spiffe://reins.test/agent/bot")
	stranger := ca.client(t, "stranger")
	both := ca.client(t, "fixer", "spiffe://reins.test/agent/bot")
	if code, body := call(&fixer, ""); code != http.StatusOK || body != "fixer" {
		t.Errorf("certificate CN fixer: %d %s", code, body)
	}
	if code, body := call(&bot, ""); code != http.StatusOK || body != "spiffe-bot" {
		t.Errorf("certificate URI SAN: %d %s", code, body)
	}
	if code, _ := call(&stranger, ""); code != http.StatusUnauthorized {
		t.Errorf("unknown certificate: %d", code)
	}
	if code, _ := call(&both, ""); code != http.StatusUnauthorized {
		t.Errorf("a certificate matching two clients: %d", code)
	}
	if code, _ := call(nil, ""); code != http.StatusUnauthorized {
		t.Errorf("no credential: %d", code)
	}
	// A bearer token decides when present, certificate or not.
	if code, body := call(&fixer, "tok"); code != http.StatusOK || body != "tokened" {
		t.Errorf("token with a certificate: %d %s", code, body)
	}
	if code, _ := call(&fixer, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token with a good certificate: %d", code)
	}
	// A certificate from another CA fails the handshake: never unverified.
	other := newTestCA(t).client(t, "fixer")
	if code, _ := call(&other, ""); code == http.StatusOK {
		t.Error("a certificate of an untrusted CA was accepted")
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]rate.Limit{
		"": rate.Limit(0.5), "30/m": rate.Limit(0.5), "5/s": 5, "360/h": 0.1, "3/90s": rate.Limit(1.0 / 30), "unlimited": rate.Inf,
	} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0/m", "-1/m", "x/m", "30", "30/", "30/week", "30/-1s", "30/0s", "/m"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted", in)
		}
	}
}
