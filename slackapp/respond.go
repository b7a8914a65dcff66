package slackapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultResponseURLPrefixes are where Slack's response_urls point.
var defaultResponseURLPrefixes = []string{"https://hooks.slack.com/", "https://hooks.slack-gov.com/"}

// DefaultResponseURLPrefixes returns the prefixes a Responder answers by
// default: Slack's (commercial and GovSlack) hooks.
func DefaultResponseURLPrefixes() []string {
	return append([]string(nil), defaultResponseURLPrefixes...)
}

// ResponderOptions configures NewResponder.
type ResponderOptions struct {
	// URLPrefixes are the response_url prefixes answered; any other URL is
	// refused, so a reply never goes anywhere but Slack. Default
	// DefaultResponseURLPrefixes.
	URLPrefixes []string
	// Timeout bounds one reply. Default 10s.
	Timeout time.Duration
}

// Responder answers clicks through their response_url. Safe for concurrent use.
type Responder struct {
	prefixes []string
	client   *http.Client
}

// NewResponder returns a Responder. Each prefix must be an absolute http(s)
// URL whose path starts with "/", so that it pins the host.
func NewResponder(opts ResponderOptions) (*Responder, error) {
	if len(opts.URLPrefixes) == 0 {
		opts.URLPrefixes = DefaultResponseURLPrefixes()
	}
	for _, p := range opts.URLPrefixes {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasPrefix(u.Path, "/") || u.User != nil {
			return nil, fmt.Errorf("slack response URL prefix %q: must be an absolute http(s) URL ending its host with \"/\", e.g. %q", p, defaultResponseURLPrefixes[0])
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &Responder{
		prefixes: opts.URLPrefixes,
		client: &http.Client{
			Timeout: opts.Timeout,
			// A response_url answers directly; a redirect could lead anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// ErrResponseURL: a response_url outside the allowed prefixes.
var ErrResponseURL = errors.New("response_url not allowed")

// reply is the body posted to a response_url.
type reply struct {
	ResponseType    string `json:"response_type"`
	ReplaceOriginal bool   `json:"replace_original"`
	Text            string `json:"text"`
}

// Ephemeral shows text (plain words; it is escaped) to the user who clicked,
// and to nobody else; the original message stays as it is.
func (r *Responder) Ephemeral(ctx context.Context, responseURL, text string) error {
	allowed := false
	for _, p := range r.prefixes {
		if strings.HasPrefix(responseURL, p) {
			allowed = true
			break
		}
	}
	if !allowed {
		return fmt.Errorf("%w: it does not start with any of %v (slack.response_url_prefixes)", ErrResponseURL, r.prefixes)
	}
	body, err := json.Marshal(reply{ResponseType: "ephemeral", Text: mrkdwn(text, maxSection)})
	if err != nil {
		return fmt.Errorf("encode ephemeral reply: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("ephemeral reply: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		// The URL is a credential to post to the user's view: keep it out.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("ephemeral reply: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ephemeral reply: Slack answered %s", resp.Status)
	}
	return nil
}
