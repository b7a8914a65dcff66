package slackapp

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

const testSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// signed returns headers that sign body at t exactly as Slack does.
func signed(secret string, t time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(t.Unix(), 10)
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, SignatureHeader([]byte(secret), ts, body))
	return h
}

func newTestVerifier(t *testing.T, now *time.Time, opts VerifierOptions) *Verifier {
	t.Helper()
	opts.Now = func() time.Time { return *now }
	v, err := NewVerifier(testSecret, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
func TestSignMatchesSlackExample(t *testing.T) {
	body := []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
	got := SignatureHeader([]byte(testSecret), "1531420618", body)
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Fatalf("signature %s, want Slack's %s", got, want)
	}
	// And slack-go's verifier agrees with what the tests send.
	now := time.Now()
	h := signed(testSecret, now, body)
	sv, err := slack.NewSecretsVerifier(h, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Fatalf("slack-go refuses our signature: %v", err)
	}
}

func TestVerifyAcceptsOnceThenRefusesReplay(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	v := newTestVerifier(t, &now, VerifierOptions{})
	body := []byte("payload=%7B%7D")
	h := signed(testSecret, now.Add(-4*time.Minute), body)
	if err := v.Verify(h, body); err != nil {
		t.Fatalf("fresh request: %v", err)
	}
	if err := v.Verify(h, body); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v, want ErrReplayed", err)
	}
	// Once the window has passed the request is stale, not accepted again.
	now = now.Add(2 * time.Minute)
	if err := v.Verify(h, body); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("replay after the window: %v, want ErrStaleTimestamp", err)
	}
	// Another request in the same second is not a replay.
	other := []byte("payload=%7B%22a%22%3A1%7D")
	if err := v.Verify(signed(testSecret, now, other), other); err != nil {
		t.Fatalf("second request: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte("payload=%7B%7D")
	good := signed(testSecret, now, body)
	with := func(k, v string) http.Header {
		h := good.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	twice := good.Clone()
	twice.Add(HeaderSignature, good.Get(HeaderSignature))
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"no signature", with(HeaderSignature, ""), body, ErrMissingHeaders},
		{"no timestamp", with(HeaderTimestamp, ""), body, ErrMissingHeaders},
		{"two signatures", twice, body, ErrMissingHeaders},
		{"timestamp not a number", with(HeaderTimestamp, "12ab"), body, ErrBadTimestamp},
		{"signed timestamp", with(HeaderTimestamp, "+"+good.Get(HeaderTimestamp)), body, ErrBadTimestamp},
		{"stale", signed(testSecret, now.Add(-5*time.Minute-time.Second), body), body, ErrStaleTimestamp},
		{"future", signed(testSecret, now.Add(5*time.Minute+time.Second), body), body, ErrStaleTimestamp},
		{"wrong secret", signed("another-secret-0123456789abcdef", now, body), body, ErrBadSignature},
		{"altered body", good, []byte("payload=%7B%20%7D"), ErrBadSignature},
		{"timestamp swapped", with(HeaderTimestamp, strconv.FormatInt(now.Unix()-1, 10)), body, ErrBadSignature},
		{"v1 scheme", with(HeaderSignature, strings.Replace(good.Get(HeaderSignature), "v0=", "v1=", 1)), body, ErrBadSignature},
		{"short signature", with(HeaderSignature, good.Get(HeaderSignature)[:40]), body, ErrBadSignature},
		{"not hex", with(HeaderSignature, "v0="+strings.Repeat("zz", 32)), body, ErrBadSignature},
	}
	for _, c := range cases {
		v := newTestVerifier(t, &now, VerifierOptions{})
		err := v.Verify(c.header, c.body)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: the error shows the secret", c.name)
		}
	}
}

func TestVerifyBounds(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	v := newTestVerifier(t, &now, VerifierOptions{MaxBodyBytes: 16, MaxReplays: 2})
	big := bytes.Repeat([]byte("a"), 17)
	if err := v.Verify(signed(testSecret, now, big), big); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("big body: %v", err)
	}
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(big))
	if _, err := v.ReadBody(r); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("ReadBody of a big body: %v", err)
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("payload=1"))
	if b, err := v.ReadBody(r); err != nil || string(b) != "payload=1" {
		t.Fatalf("ReadBody: %q %v", b, err)
	}
	// Two live signatures fill the cache: the third request is refused
	// (fail closed) until the first ones expire.
	for i := range 2 {
		b := []byte{'a' + byte(i)}
		if err := v.Verify(signed(testSecret, now, b), b); err != nil {
			t.Fatal(err)
		}
	}
	c := []byte("c")
	if err := v.Verify(signed(testSecret, now, c), c); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("full cache: %v", err)
	}
	now = now.Add(5*time.Minute + time.Second)
	if err := v.Verify(signed(testSecret, now, c), c); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := v.seen.len(); n != 1 {
		t.Fatalf("expired signatures kept: %d entries", n)
	}
}

func TestNewVerifierNeedsSecret(t *testing.T) {
	if _, err := NewVerifier(" short ", VerifierOptions{}); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("short secret: %v", err)
	}
}

// Concurrent deliveries of one request: exactly one is accepted.
func TestVerifyReplayRace(t *testing.T) {
	now := time.Now()
	v := newTestVerifier(t, &now, VerifierOptions{})
	body := []byte("payload=x")
	h := signed(testSecret, now, body)
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if v.Verify(h, body) == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("%d of 16 identical requests accepted, want 1", accepted)
	}
}
