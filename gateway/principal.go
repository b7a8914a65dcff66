package gateway

import (
	"context"
	"errors"
	"net/http"
)

// Principal kinds.
const (
	KindAgent = "agent"
	KindHuman = "human"
)

// Principal is a caller the gateway authenticated: an agent (API, MCP) or a
// human (the approving CLI). Its Name, never a field of the request, is who
// the caller is: an agent's plans carry it as their requester, a human's
// approvals as their approver.
type Principal struct {
	Name string
	// Kind is KindAgent or KindHuman.
	Kind string
	// Groups are the approver groups a human belongs to.
	Groups []string
	// Owner is the human accountable for an agent: they may not co-sign the
	// agent's steps.
	Owner string
}

// ErrUnauthenticated is returned by an Authenticator for a request that
// carries no credential, or one that matches no client.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator finds who sent a request.
type Authenticator interface {
	// Authenticate returns the request's principal, or an error wrapping
	// ErrUnauthenticated. It never logs the credential.
	Authenticate(r *http.Request) (Principal, error)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal RequirePrincipal put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// RequirePrincipal serves next only to requests auth accepts whose
// principal is of one of kinds (any kind when none is given), with the
// principal in the request's context; every other request gets a 401 or 403
// problem and never reaches next.
func RequirePrincipal(auth Authenticator, next http.Handler, kinds ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reins"`)
			WriteProblem(w, Problem{Status: http.StatusUnauthorized, Title: "Unauthenticated",
				Detail: "send Authorization: Bearer <your client token> (or a client certificate the gateway trusts)"})
			return
		}
		if len(kinds) > 0 && !contains(kinds, p.Kind) {
			WriteProblem(w, Problem{Status: http.StatusForbidden, Title: "Forbidden",
				Detail: "client " + p.Name + " is a " + p.Kind + "; this endpoint serves " + joinOr(kinds)})
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func joinOr(list []string) string {
	out := ""
	for i, x := range list {
		switch {
		case i == 0:
		case i == len(list)-1:
			out += " or "
		default:
			out += ", "
		}
		out += x + "s"
	}
	return out
}
