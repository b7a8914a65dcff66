// Package gateway is reins' HTTP front door. New serves Temporal's remote
// codec endpoints, so that engineers read decoded histories in the Temporal
// UI, and a health check:
//
//	POST /codec/encode, POST /codec/decode   Temporal's codec server protocol
//	GET  /codec/login, POST /codec/login      a browser session for the UI
//	GET  /healthz
//
// The other doors (intake, Slack interactions, the agent API, MCP) are
// handlers of their own, mounted with Server.Handle by whoever builds the
// gateway from config (cmd/reins).
//
// Every /codec request is authenticated: with "Authorization: Bearer
// <token>" (API clients, the CLI), or with the session cookie that
// /codec/login sets after the token was typed in (the Temporal UI, whose
// codec settings must then include cross-origin credentials). CORS answers
// only the configured origins (the Temporal UI's).
package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
)

// Options configures New. The zero value of each field but Codec and Token
// is a working default.
type Options struct {
	// Codec encodes and decodes payloads. Required.
	Codec converter.PayloadCodec
	// Token authenticates requests (bearer token, or typed into the login
	// page). Required: the gateway serves nothing unauthenticated but
	// /healthz. A secret: never logged.
	Token string `json:"-"`
	// CORSOrigins are the origins allowed to call /codec from a browser,
	// e.g. "http://localhost:8233" (the Temporal UI). Default: none.
	CORSOrigins []string
	// MaxBodyBytes bounds a request body. Default 4 MiB (Temporal's payload
	// limit is 2 MiB).
	MaxBodyBytes int64
	// SecureCookie marks the session cookie Secure (serve over HTTPS).
	// Default false.
	SecureCookie bool
	// Logger receives request errors. Default slog.Default().
	Logger *slog.Logger
}

// sessionCookie is the browser session's cookie.
const sessionCookie = "reins_codec_session"

// Server is the gateway's handler.
type Server struct {
	opts  Options
	log   *slog.Logger
	codec http.Handler
	// sessionKey signs session cookies: HMAC-SHA256 keyed by the token, so
	// rotating the token ends every session.
	sessionKey []byte
	now        func() time.Time
	mux        *http.ServeMux
}

// New builds the gateway's handler.
func New(opts Options) (*Server, error) {
	if opts.Codec == nil {
		return nil, errors.New("gateway: no payload codec configured (codec.key_file or codec.transit_key)")
	}
	if len(opts.Token) < 16 {
		return nil, errors.New("gateway: the codec endpoints need a token of at least 16 characters (gateway.token_file or REINS_GATEWAY_TOKEN)")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		opts:       opts,
		log:        log,
		codec:      converter.NewPayloadCodecHTTPHandler(opts.Codec),
		sessionKey: []byte(opts.Token),
		now:        time.Now,
		mux:        http.NewServeMux(),
	}
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("/codec/login", s.login)
	s.mux.HandleFunc("/codec/encode", s.serveCodec)
	s.mux.HandleFunc("/codec/decode", s.serveCodec)
	return s, nil
}

// Handle mounts h on pattern (http.ServeMux syntax, e.g. "POST
// /v1/remediations"). Call it before serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// serveCodec serves /codec/encode and /codec/decode.
func (s *Server) serveCodec(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="reins codec"`)
		http.Error(w, "unauthorized: send Authorization: Bearer <gateway token>, or log in at /codec/login", http.StatusUnauthorized)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	s.codec.ServeHTTP(w, r)
}

// cors answers the allowed origins, with credentials (the session cookie).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" || !slices.Contains(s.opts.CORSOrigins, origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
	h.Set("Access-Control-Max-Age", "600")
}

func (s *Server) authorized(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.opts.Token)) == 1
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		return s.validSession(c.Value)
	}
	return false
}

// sessionTTL is how long a browser session lasts: the cookie says when it
// ends, under the token's HMAC, so the server enforces it.
const sessionTTL = 12 * time.Hour

// newSession is the cookie value of a session that ends at end:
// "<unix end>.<hex HMAC of it>".
func (s *Server) newSession(end time.Time) string {
	exp := strconv.FormatInt(end.Unix(), 10)
	return exp + "." + s.sessionMAC(exp)
}

func (s *Server) sessionMAC(exp string) string {
	mac := hmac.New(sha256.New, s.sessionKey)
	mac.Write([]byte("reins codec session v2\x00" + exp))
	return hex.EncodeToString(mac.Sum(nil))
}

// validSession reports whether v is a session this gateway's token signed
// that has not ended.
func (s *Server) validSession(v string) bool {
	exp, sum, ok := strings.Cut(v, ".")
	if !ok || subtle.ConstantTimeCompare([]byte(sum), []byte(s.sessionMAC(exp))) != 1 {
		return false
	}
	end, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && s.now().Unix() < end
}

const loginPage = `<!doctype html><meta charset="utf-8"><title>reins codec</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>reins codec server</h1><p>%s</p>
<form method="post"><label>Gateway token <input type="password" name="token" autofocus></label>
<button>Log in</button></form>
<p>Then, in the Temporal UI's codec server settings, turn on <em>include cross-origin credentials</em>.</p>`

// login shows the token form (GET) and, given the right token (POST), sets
// the session cookie for this browser.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet:
		msg := "Log in once so that the Temporal UI can decode payloads in this browser."
		if s.authorized(r) {
			msg = "This browser is logged in."
		}
		fmt.Fprintf(w, loginPage, html.EscapeString(msg))
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(s.opts.Token)) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, loginPage, "Wrong token.")
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name: sessionCookie, Value: s.newSession(s.now().Add(sessionTTL)), Path: "/codec",
			HttpOnly: true, Secure: s.opts.SecureCookie, SameSite: http.SameSiteLaxMode,
			MaxAge: int(sessionTTL.Seconds()),
		})
		fmt.Fprintf(w, loginPage, "Logged in: the Temporal UI can decode payloads in this browser.")
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
