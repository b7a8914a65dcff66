package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Default rate limit of a client: 30 calls a minute, in bursts of up to 10.
const (
	DefaultRate  = "30/m"
	DefaultBurst = 10
)

// maxTokenBytes bounds a presented bearer token; longer ones match no client.
const maxTokenBytes = 512

// clientNameRE is what a client name may be: it becomes a plan's requester
// ("agent:<name>") and an approver's identity.
var clientNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$`)

// isEmail reports whether s looks like an e-mail address: one '@' between
// a local part and a domain with a dot.
func isEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && !strings.Contains(domain, "@") && strings.Contains(strings.Trim(domain, "."), ".")
}

// Client is one caller the gateway knows: an agent or a human, who proves
// who they are with a bearer token (of which the gateway holds only the
// SHA-256) or with a client certificate (mTLS).
type Client struct {
	// Principal is who the client is: its Name, Kind, Groups (humans) and
	// Owner (agents).
	Principal
	// TokenSHA256 is the hex SHA-256 of the client's bearer token (see
	// NewClientToken), "" when the client authenticates with a certificate
	// only.
	TokenSHA256 string
	// CertSubject is the Subject CN or a URI SAN of the client's
	// certificate, "" when it authenticates with a token only.
	CertSubject string
	// Rate bounds the client's calls: "<n>/<unit>", unit s, m or h, or a
	// Go duration ("5/90s"); "unlimited" for none. Default DefaultRate.
	Rate string
	// Burst is how many calls it may make at once. Default DefaultBurst.
	Burst int
}

// RateLimiter decides whether a client may make one more call now.
type RateLimiter interface {
	// Allow takes one call from the named client's budget, or reports how
	// long until the next call would be allowed.
	Allow(client string) (ok bool, retryAfter time.Duration)
}

// Clients authenticates a fixed list of clients and limits each one's rate.
// It is both the gateway's Authenticator and its RateLimiter. Safe for
// concurrent use.
type Clients struct {
	clients  []Client
	hashes   [][sha256.Size]byte
	hasToken []int // 1 when clients[i] has a token
	limiters map[string]*rate.Limiter
}

var (
	_ Authenticator = (*Clients)(nil)
	_ RateLimiter   = (*Clients)(nil)
)

// NewClients checks list and builds its authenticator: every client has a
// unique valid name, a kind, a credential (token hash or certificate
// subject) that no other client shares; humans have groups, agents none.
// The error joins one error per bad field, each naming it
// ("clients[2].groups: ...").
func NewClients(list []Client) (*Clients, error) {
	c := &Clients{
		clients:  slices.Clone(list),
		hashes:   make([][sha256.Size]byte, len(list)),
		hasToken: make([]int, len(list)),
		limiters: make(map[string]*rate.Limiter, len(list)),
	}
	var errs []error
	subjects := map[string]string{}
	hashes := map[[sha256.Size]byte]string{}
	for i, cl := range c.clients {
		at := fmt.Sprintf("clients[%d]", i)
		if !clientNameRE.MatchString(cl.Name) {
			errs = append(errs, fmt.Errorf("%s.name %q: must be 1 to 100 letters, digits and . _ @ -, starting with a letter or digit", at, cl.Name))
		} else if _, dup := c.limiters[cl.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name %q: another client has this name; names must be unique", at, cl.Name))
		}
		switch cl.Kind {
		case KindAgent:
			if len(cl.Groups) > 0 {
				errs = append(errs, fmt.Errorf("%s.groups: agent %q cannot be in approver groups; only humans co-sign", at, cl.Name))
			}
			if cl.Owner != "" && !isEmail(cl.Owner) {
				errs = append(errs, fmt.Errorf("%s.owner %q: name the agent's owner by their e-mail address (e.g. dana@example.com), as Slack knows approvers, so that they cannot co-sign the agent's steps there", at, cl.Owner))
			}
		case KindHuman:
			if !isEmail(cl.Name) {
				errs = append(errs, fmt.Errorf("%s.name %q: name a human by their e-mail address (e.g. dana@example.com), as Slack knows approvers, so that they cannot co-sign in Slack what they started", at, cl.Name))
			}
			if len(cl.Groups) == 0 {
				errs = append(errs, fmt.Errorf("%s.groups: human %q needs at least one approver group", at, cl.Name))
			}
			if cl.Owner != "" {
				errs = append(errs, fmt.Errorf("%s.owner: only agents have an owner; remove it from human %q", at, cl.Name))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.kind %q: must be %q or %q", at, cl.Kind, KindAgent, KindHuman))
		}
		if cl.TokenSHA256 == "" && cl.CertSubject == "" {
			errs = append(errs, fmt.Errorf("%s: client %q has no credential; set token_sha256 (see `reins client token`) or cert_subject", at, cl.Name))
		}
		if cl.TokenSHA256 != "" {
			if sum, err := hex.DecodeString(cl.TokenSHA256); err != nil || len(sum) != sha256.Size {
				errs = append(errs, fmt.Errorf("%s.token_sha256: must be the hex SHA-256 of the client's token (64 hex digits, as `reins client token` prints), never the token itself", at))
			} else {
				copy(c.hashes[i][:], sum)
				c.hasToken[i] = 1
				if other, dup := hashes[c.hashes[i]]; dup {
					errs = append(errs, fmt.Errorf("%s.token_sha256: clients %q and %q share a token; give each client its own", at, other, cl.Name))
				}
				hashes[c.hashes[i]] = cl.Name
			}
		}
		if cl.CertSubject != "" {
			if other, dup := subjects[cl.CertSubject]; dup {
				errs = append(errs, fmt.Errorf("%s.cert_subject %q: client %q has the same subject; subjects must be unique", at, cl.CertSubject, other))
			}
			subjects[cl.CertSubject] = cl.Name
		}
		limit, err := parseRate(cl.Rate)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.rate %q: %w", at, cl.Rate, err))
		}
		burst := cl.Burst
		switch {
		case burst < 0:
			errs = append(errs, fmt.Errorf("%s.burst: must be positive; leave it out for %d", at, DefaultBurst))
		case burst == 0:
			burst = DefaultBurst
		}
		c.limiters[cl.Name] = rate.NewLimiter(limit, burst)
	}
	if len(errs) > 0 {
		// Joined unwrapped, so that the config names each field.
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Authenticate finds the client that sent r. A request with an
// Authorization header is authenticated by its bearer token alone: the
// token's SHA-256 is compared, in constant time, with every client's, so
// that timing reveals neither whether nor which client matched. Otherwise
// the client certificate the TLS handshake verified (the server must
// verify client certificates against the clients' CA) is matched by its
// Subject CN or one of its URI SANs.
func (c *Clients) Authenticate(r *http.Request) (Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > maxTokenBytes {
			return Principal{}, fmt.Errorf("%w: the Authorization header is not \"Bearer <token>\"", ErrUnauthenticated)
		}
		sum := sha256.Sum256([]byte(tok))
		match := -1
		for i := range c.clients {
			eq := subtle.ConstantTimeCompare(sum[:], c.hashes[i][:]) & c.hasToken[i]
			match = subtle.ConstantTimeSelect(eq, i, match)
		}
		if match < 0 {
			return Principal{}, fmt.Errorf("%w: no client has this token", ErrUnauthenticated)
		}
		return c.clients[match].Principal, nil
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Principal{}, fmt.Errorf("%w: no bearer token and no verified client certificate", ErrUnauthenticated)
	}
	leaf := r.TLS.VerifiedChains[0][0]
	ids := []string{leaf.Subject.CommonName}
	for _, u := range leaf.URIs {
		ids = append(ids, u.String())
	}
	match := -1
	for i, cl := range c.clients {
		if cl.CertSubject == "" || !slices.Contains(ids, cl.CertSubject) {
			continue
		}
		if match >= 0 {
			return Principal{}, fmt.Errorf("%w: the client certificate matches clients %q and %q", ErrUnauthenticated, c.clients[match].Name, cl.Name)
		}
		match = i
	}
	if match < 0 {
		return Principal{}, fmt.Errorf("%w: no client has certificate subject %q", ErrUnauthenticated, leaf.Subject.CommonName)
	}
	return c.clients[match].Principal, nil
}

// Allow takes one call from the client's budget. An unknown client is
// refused (for a minute): only configured clients reach the doors.
func (c *Clients) Allow(client string) (bool, time.Duration) {
	l, ok := c.limiters[client]
	if !ok {
		return false, time.Minute
	}
	res := l.Reserve()
	if !res.OK() {
		return false, time.Minute
	}
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return false, d
	}
	return true, 0
}

// tokenPrefix marks reins client tokens, so that secret scanners find them.
const tokenPrefix = "reins_"

// NewClientToken returns a new random client token (256 bits) and the hex
// SHA-256 the gateway's config holds for it (clients[].token_sha256).
func NewClientToken() (token, sha256Hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate client token: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is the hex SHA-256 of token, as clients[].token_sha256 holds it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// parseRate reads a client's rate: "" (DefaultRate), "unlimited", or
// "<n>/<unit>" with n a positive whole number and unit s, m, h or a Go
// duration.
func parseRate(s string) (rate.Limit, error) {
	if s == "" {
		s = DefaultRate
	}
	if s == "unlimited" {
		return rate.Inf, nil
	}
	count, per, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n <= 0 {
		return 0, errors.New(`must be "<calls>/<unit>", e.g. "30/m", "5/s", "100/h" or "10/90s", or "unlimited"`)
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return 0, fmt.Errorf("unit %q must be s, m, h or a positive Go duration such as 90s", per)
		}
	}
	return rate.Limit(float64(n) / d.Seconds()), nil
}
