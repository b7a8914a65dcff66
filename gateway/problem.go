package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ProblemMediaType is RFC 9457's media type.
const ProblemMediaType = "application/problem+json"

// Problem is an RFC 9457 problem details object: every error the gateway's
// APIs return.
type Problem struct {
	// Type is a URI naming the kind of problem. Default "about:blank".
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
	// Errors name each bad field of the request and its fix (extension member).
	Errors []FieldProblem `json:"errors,omitempty"`
	// RetryAfter is set, in seconds, with 429 and 503 (also as the header).
	RetryAfter int `json:"retry_after,omitempty"`
}

// FieldProblem is one bad field: Field is its JSON path ("steps[1].target.name").
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	h := w.Header()
	h.Set("Content-Type", ProblemMediaType)
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
