package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/reins-dev/reins/remediation"
)

// WebhookOptions configure the webhook sink.
type WebhookOptions struct {
	// URL receives one POST per record. Required.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <Token>". It is a
	// secret: never logged.
	Token string `json:"-"`
	// Timeout bounds each request. Default 10s.
	Timeout time.Duration
	// Client sends the requests. Default: a client with Timeout.
	Client *http.Client
}

// Webhook is the HTTP sink, e.g. a SIEM's ingest endpoint.
type Webhook struct {
	url    string
	token  string
	client *http.Client
}

// NewWebhook checks the options.
func NewWebhook(opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit webhook: URL %q must be an http or https URL", opts.URL)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	c := &http.Client{Timeout: opts.Timeout}
	if opts.Client != nil {
		cc := *opts.Client
		c = &cc
	}
	// A redirect is an error, never followed: a 302 or 303 would turn the
	// POST into a GET without the record, and its 200 would pass for a
	// stored record; a 307 would carry the token to another address.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Webhook{url: opts.URL, token: opts.Token, client: c}, nil
}

// Name is "webhook".
func (w *Webhook) Name() string { return "webhook" }

// Close does nothing.
func (w *Webhook) Close() error { return nil }

// Store POSTs the record. The receiver deduplicates by the Idempotency-Key
// header (the record id): reins sends a record again when it is not sure the
// first delivery was taken. A 409 Conflict means the receiver already has it.
func (w *Webhook) Store(ctx context.Context, rec remediation.AuditRecord, raw []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(raw))
	if err != nil {
		return false, fmt.Errorf("audit webhook: %w", err)
	}
	req.Header.Set("Content-Type", remediation.AuditMediaType)
	req.Header.Set("Idempotency-Key", rec.ID)
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("audit webhook: POST %s: %w", rec.Label(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusConflict:
		return true, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return false, fmt.Errorf("audit webhook: POST %s: %s to %q: redirects are not followed; set audit.webhook.url to the final address",
			rec.Label(), resp.Status, resp.Header.Get("Location"))
	}
	return false, fmt.Errorf("audit webhook: POST %s: %s: %s", rec.Label(), resp.Status, bytes.TrimSpace(body))
}
