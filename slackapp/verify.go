package slackapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Slack's request-signing headers.
const (
	HeaderSignature = "X-Slack-Signature"
	HeaderTimestamp = "X-Slack-Request-Timestamp"
)

// Defaults of VerifierOptions.
const (
	DefaultWindow       = 5 * time.Minute
	DefaultMaxBodyBytes = 128 << 10
	DefaultMaxReplays   = 100_000
	// minSecretLen: Slack's signing secrets are 32 hex digits.
	minSecretLen = 16
)

// Errors of Verifier.Verify and ReadBody, each wrapped with the detail. None
// of them carries the secret or a computed signature.
var (
	ErrMissingHeaders = errors.New("missing Slack signature headers")
	ErrBadTimestamp   = errors.New("bad Slack request timestamp")
	ErrStaleTimestamp = errors.New("stale Slack request timestamp")
	ErrBadSignature   = errors.New("bad Slack request signature")
	ErrReplayed       = errors.New("replayed Slack request")
	ErrReplayFull     = errors.New("full Slack replay cache")
	ErrBodyTooLarge   = errors.New("oversized Slack request body")
)

// VerifierOptions configures NewVerifier. The zero value of every field is
// its default.
type VerifierOptions struct {
	// Window is how far a request's timestamp may be from now, either way.
	// Default 5m (Slack's recommendation).
	Window time.Duration
	// MaxBodyBytes bounds a request body. Default 128 KiB: a click's payload
	// carries the whole message clicked, which reins keeps well under that.
	MaxBodyBytes int64
	// MaxReplays bounds the replay cache: signatures seen within the window.
	// When it is full of live entries, requests are refused (fail closed).
	// Default 100000.
	MaxReplays int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Verifier checks that requests come from Slack: the v0 signature (HMAC
// SHA-256 with the app's signing secret over "v0:<timestamp>:<body>",
// compared in constant time), a timestamp within the window, and a
// signature not seen before within the window (a captured request cannot
// be replayed to this process). Safe for concurrent use.
type Verifier struct {
	secret []byte
	opts   VerifierOptions
	seen   *seenSet
}

// NewVerifier returns a Verifier for the app's signing secret. The secret is
// kept only in the Verifier and never appears in an error.
func NewVerifier(secret string, opts VerifierOptions) (*Verifier, error) {
	secret = strings.TrimSpace(secret)
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("slack signing secret: must be the app's signing secret (Basic Information → App Credentials), at least %d characters", minSecretLen)
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxReplays <= 0 {
		opts.MaxReplays = DefaultMaxReplays
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Verifier{secret: []byte(secret), opts: opts, seen: newSeenSet(opts.MaxReplays)}, nil
}

// ReadBody reads r's body, at most MaxBodyBytes of it.
func (v *Verifier) ReadBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, v.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read Slack request body: %w", err)
	}
	if int64(len(body)) > v.opts.MaxBodyBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, v.opts.MaxBodyBytes)
	}
	return body, nil
}

// Verify checks header's signature and timestamp over body, and records the
// signature so that the same request is refused if it comes again within
// the window. It returns nil only for a fresh request signed with the secret.
func (v *Verifier) Verify(header http.Header, body []byte) error {
	if int64(len(body)) > v.opts.MaxBodyBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, v.opts.MaxBodyBytes)
	}
	sigs, stamps := header.Values(HeaderSignature), header.Values(HeaderTimestamp)
	if len(sigs) == 0 || len(stamps) == 0 {
		return fmt.Errorf("%w: %s and %s are required", ErrMissingHeaders, HeaderSignature, HeaderTimestamp)
	}
	if len(sigs) > 1 || len(stamps) > 1 {
		return fmt.Errorf("%w: %s and %s must each appear once", ErrMissingHeaders, HeaderSignature, HeaderTimestamp)
	}
	stamp := stamps[0]
	if len(stamp) == 0 || len(stamp) > 12 || strings.Trim(stamp, "0123456789") != "" {
		return fmt.Errorf("%w: %s must be Unix seconds", ErrBadTimestamp, HeaderTimestamp)
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s must be Unix seconds", ErrBadTimestamp, HeaderTimestamp)
	}
	at, now := time.Unix(secs, 0), v.opts.Now()
	if d := now.Sub(at); d > v.opts.Window || d < -v.opts.Window {
		return fmt.Errorf("%w: request signed at %s, %s from now (allowed %s)", ErrStaleTimestamp, at.UTC().Format(time.RFC3339), d.Round(time.Second), v.opts.Window)
	}
	hexSig, ok := strings.CutPrefix(sigs[0], "v0=")
	if !ok {
		return fmt.Errorf("%w: %s must be v0=<hex>", ErrBadSignature, HeaderSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s must be v0= and 64 hex digits", ErrBadSignature, HeaderSignature)
	}
	if !hmac.Equal(got, Sign(v.secret, stamp, body)) {
		return fmt.Errorf("%w: not signed with this app's signing secret, or altered", ErrBadSignature)
	}
	// Only a verified signature enters the cache: a forger cannot fill it.
	switch v.seen.add(string(got), at.Add(v.opts.Window), now) {
	case seenBefore:
		return fmt.Errorf("%w: this signature (timestamp %s) was already accepted", ErrReplayed, stamp)
	case seenFull:
		return fmt.Errorf("%w: %d requests within %s; refusing until entries expire", ErrReplayFull, v.opts.MaxReplays, v.opts.Window)
	}
	return nil
}

// Sign returns Slack's v0 signature (raw bytes) of body sent at timestamp
// (Unix seconds, as sent in X-Slack-Request-Timestamp). The header value is
// "v0=" + hex of it.
func Sign(secret []byte, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("v0:" + timestamp + ":"))
	mac.Write(body)
	return mac.Sum(nil)
}

// SignatureHeader returns the X-Slack-Signature value for body at timestamp.
func SignatureHeader(secret []byte, timestamp string, body []byte) string {
	return "v0=" + hex.EncodeToString(Sign(secret, timestamp, body))
}
