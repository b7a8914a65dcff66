package workers

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Environment variables of the CLI's gateway client (they override the config file).
const (
	EnvGatewayURL  = "REINS_GATEWAY_URL"
	EnvClientToken = "REINS_CLIENT_TOKEN"
)

// GatewayClientConfig is how the CLI reaches the gateway's authenticated
// API (reins approve, reins deny). The token is the human's client token:
// the gateway's clients config maps it to their name and approver groups.
type GatewayClientConfig struct {
	// URL is the gateway's base URL, e.g. "https://reins.example.com".
	// Env REINS_GATEWAY_URL. Default: none (the commands that need it say so).
	URL string `json:"url"`
	// TokenFile holds the client token. Env REINS_CLIENT_TOKEN (the token
	// itself) takes precedence.
	TokenFile string `json:"token_file"`
	// token is REINS_CLIENT_TOKEN. A secret: never serialized or logged.
	token string
}

func (c *GatewayClientConfig) applyEnv() {
	if v := os.Getenv(EnvGatewayURL); v != "" {
		c.URL = v
	}
	if v := os.Getenv(EnvClientToken); v != "" {
		c.token = strings.TrimSpace(v)
	}
}

// validate names every bad field.
func (c GatewayClientConfig) validate() []error {
	if c.URL == "" {
		return nil
	}
	if _, err := c.BaseURL(); err != nil {
		return []error{err}
	}
	return nil
}

// BaseURL is the gateway's URL, without a trailing slash.
func (c GatewayClientConfig) BaseURL() (string, error) {
	if c.URL == "" {
		return "", errors.New("config client.url is not set (or set " + EnvGatewayURL + "): the gateway's URL, e.g. https://reins.example.com")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("config client.url: %q must be an http(s) URL without query, e.g. https://reins.example.com", c.URL)
	}
	return strings.TrimRight(c.URL, "/"), nil
}

// Token is the client token: REINS_CLIENT_TOKEN, else the content of token_file.
func (c GatewayClientConfig) Token() (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	if c.TokenFile == "" {
		return "", errors.New("config client.token_file is not set (or set " + EnvClientToken + "): the gateway authenticates you by your client token")
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("config client.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("config client.token_file %s is empty: it must hold your client token", c.TokenFile)
	}
	return t, nil
}
