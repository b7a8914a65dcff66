package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/reins-dev/reins/codec"
)

const token = "test-token-0123456789abcdef"

// newServer is a gateway with a fresh codec key and the test token.
func newServer(t *testing.T, corsOrigins ...string) (*Server, *codec.Codec) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := codec.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	keys, err := codec.LoadFileKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &codec.Codec{Keys: keys}
	gw, err := New(Options{Codec: c, Token: token, CORSOrigins: corsOrigins})
	if err != nil {
		t.Fatal(err)
	}
	return gw, c
}

func server(t *testing.T) (*httptest.Server, *codec.Codec) {
	t.Helper()
	gw, c := newServer(t, "http://localhost:8233")
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv, c
}

func post(t *testing.T, srv *httptest.Server, path string, ps []*commonpb.Payload, header http.Header, cookies ...*http.Cookie) (*http.Response, []*commonpb.Payload) {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(string(body)))
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, b := roundTrip(t, req)
	var out commonpb.Payloads
	if resp.StatusCode == http.StatusOK {
		if err := protojson.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
	}
	return resp, out.Payloads
}

// roundTrip sends req and returns the response with its whole body read.
func roundTrip(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestCodecEndpoints(t *testing.T) {
	srv, c := server(t)
	plain, _ := converter.GetDefaultDataConverter().ToPayloads("the plan")
	bearer := http.Header{"Authorization": {"Bearer " + token}}

	resp, enc := post(t, srv, "/codec/encode", plain.Payloads, bearer)
	if resp.StatusCode != http.StatusOK || string(enc[0].Metadata["encoding"]) != codec.Encoding {
		t.Fatalf("encode: %s %v", resp.Status, enc)
	}
	resp, dec := post(t, srv, "/codec/decode", enc, bearer)
	if resp.StatusCode != http.StatusOK || string(dec[0].Data) != `"the plan"` {
		t.Fatalf("decode: %s %v", resp.Status, dec)
	}
	// What the worker's codec encoded, the gateway decodes.
	local, _ := c.Encode(plain.Payloads)
	if _, dec := post(t, srv, "/codec/decode", local, bearer); len(dec) != 1 || string(dec[0].Data) != `"the plan"` {
		t.Fatalf("decode of a worker payload: %v", dec)
	}

	for _, h := range []http.Header{{}, {"Authorization": {"Bearer nope"}}, {"Authorization": {token}}} {
		if resp, _ := post(t, srv, "/codec/decode", enc, h); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("decode with %v: %s, want 401", h, resp.Status)
		}
	}
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %v %v", resp, err)
	}
	if resp, err := http.Get(srv.URL + "/codec/decode"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET decode: %v %v", resp.Status, err)
	}
}

func TestCORSAndBrowserSession(t *testing.T) {
	gw, _ := newServer(t, "http://localhost:8233")
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/codec/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ui := preflight("http://localhost:8233")
	if ui.StatusCode != http.StatusNoContent || ui.Header.Get("Access-Control-Allow-Origin") != "http://localhost:8233" ||
		ui.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(ui.Header.Get("Access-Control-Allow-Headers"), "X-Namespace") {
		t.Errorf("preflight from the UI: %s %v", ui.Status, ui.Header)
	}
	if other := preflight("http://evil.example"); other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin allowed: %v", other.Header)
	}

	// Log in with the token: the cookie then authorizes codec calls.
	noRedirect := &http.Client{}
	resp, err := noRedirect.PostForm(srv.URL+"/codec/login", url.Values{"token": {"wrong"}})
	if err != nil || resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %v %v %v", resp.Status, resp.Cookies(), err)
	}
	resp, err = noRedirect.PostForm(srv.URL+"/codec/login", url.Values{"token": {token}})
	if err != nil || resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %v %v", resp, err)
	}
	cookie := resp.Cookies()[0]
	if !cookie.HttpOnly || strings.Contains(cookie.Value, token) {
		t.Errorf("session cookie %+v", cookie)
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayloads("x")
	if resp, _ := post(t, srv, "/codec/encode", plain.Payloads, http.Header{"Origin": {"http://localhost:8233"}}, cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("encode with the session cookie: %s", resp.Status)
	}
	forged := *cookie
	forged.Value = strings.Repeat("0", len(cookie.Value))
	if resp, _ := post(t, srv, "/codec/encode", plain.Payloads, http.Header{}, &forged); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("encode with a forged cookie: %s", resp.Status)
	}
	// The session carries its end under the token's HMAC: moving the end
	// breaks it, and the server refuses it once it has passed.
	exp, sum, _ := strings.Cut(cookie.Value, ".")
	end, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Until(time.Unix(end, 0)) > 12*time.Hour || time.Until(time.Unix(end, 0)) < 11*time.Hour {
		t.Fatalf("session %q: want one ending in 12 hours", cookie.Value)
	}
	extended := *cookie
	extended.Value = strconv.FormatInt(end+86400, 10) + "." + sum
	if resp, _ := post(t, srv, "/codec/encode", plain.Payloads, http.Header{}, &extended); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("encode with a session whose end was moved: %s", resp.Status)
	}
	gw.now = func() time.Time { return time.Unix(end, 0) }
	if resp, _ := post(t, srv, "/codec/encode", plain.Payloads, http.Header{}, cookie); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("encode with an ended session: %s", resp.Status)
	}
}

func TestNewRefusesWeakSetups(t *testing.T) {
	if _, err := New(Options{Token: token}); err == nil {
		t.Error("no codec accepted")
	}
	if _, err := New(Options{Codec: &codec.Codec{}, Token: "short"}); err == nil {
		t.Error("short token accepted")
	}
}
