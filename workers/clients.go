package workers

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/reins-dev/reins/gateway"
)

// ClientsConfig lists the clients the gateway authenticates, agents and
// humans, under clients: in the config:
//
//	clients:
//	  - name: sre-agent
//	    kind: agent
//	    owner: alice@example.com
//	    token_sha256: 9f86d0…   # `reins client token` makes a token and prints this
//	    rate: 30/m              # default 30/m, burst 10
//	  - name: alice@example.com
//	    kind: human
//	    groups: [sre-oncall]
//	    cert_subject: alice     # mTLS: needs gateway.tls.client_ca_file
type ClientsConfig []ClientConfig

// ClientConfig is one client of the gateway.
type ClientConfig struct {
	// Name is who the client is: an agent's plans carry it as their
	// requester ("agent:<name>"), a human's approvals as their approver.
	// Letters, digits and . _ @ -; unique. Name a human by their email:
	// Slack approvers are known by the email of their Slack profile, and
	// the requester and owner rules compare identities across doors.
	Name string `json:"name"`
	// Kind is "agent" or "human".
	Kind string `json:"kind"`
	// TokenSHA256 is the hex SHA-256 of the client's bearer token; the
	// config never holds the token itself (`reins client token`).
	TokenSHA256 string `json:"token_sha256"`
	// CertSubject authenticates the client by its TLS client certificate:
	// the Subject CN or one of its URI SANs (e.g. a SPIFFE ID), verified
	// against gateway.tls.client_ca_file.
	CertSubject string `json:"cert_subject"`
	// Groups are a human's approver groups (required for humans; agents
	// have none).
	Groups []string `json:"groups"`
	// Owner is the human accountable for an agent: they may not co-sign
	// the agent's steps, in Slack or through `reins approve`. Agents only;
	// optional. Their email, as for a human's Name.
	Owner string `json:"owner"`
	// Rate limits the client's calls: "<n>/<unit>" with unit s, m or h, or
	// a Go duration ("10/90s"); "unlimited" for none. Default "30/m".
	Rate string `json:"rate"`
	// Burst is how many calls may come at once. Default 10.
	Burst int `json:"burst"`
}

// gatewayClients is the list as the gateway takes it.
func (c ClientsConfig) gatewayClients() []gateway.Client {
	out := make([]gateway.Client, len(c))
	for i, cc := range c {
		out[i] = gateway.Client{
			Principal:   gateway.Principal{Name: cc.Name, Kind: cc.Kind, Groups: cc.Groups, Owner: cc.Owner},
			TokenSHA256: cc.TokenSHA256,
			CertSubject: cc.CertSubject,
			Rate:        cc.Rate,
			Burst:       cc.Burst,
		}
	}
	return out
}

// validate names every bad field (an empty list is valid: the agent door
// then refuses every call).
func (c ClientsConfig) validate() []error {
	if _, err := gateway.NewClients(c.gatewayClients()); err != nil {
		return configErrors(err)
	}
	return nil
}

// configErrors prefixes each of the joined errors with "config ".
func configErrors(err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("config %w", e)
	}
	return out
}

// Authenticator builds the gateway's client authenticator, which is also
// its per-client rate limiter (gateway.AgentAPIOptions Auth and Limiter).
func (c ClientsConfig) Authenticator() (*gateway.Clients, error) {
	clients, err := gateway.NewClients(c.gatewayClients())
	if err != nil {
		return nil, errors.Join(configErrors(err)...)
	}
	return clients, nil
}

// GatewayTLS makes the gateway serve HTTPS and, with ClientCAFile, verify
// client certificates (clients authenticated by cert_subject). Clients
// with a token need no certificate: a certificate is asked for, not
// required.
type GatewayTLS struct {
	// CertFile and KeyFile are the gateway's PEM certificate (chain) and key.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// ClientCAFile holds the PEM certificates of the CAs that sign client
	// certificates. Default: no client certificates.
	ClientCAFile string `json:"client_ca_file"`
}

// Enabled reports whether the gateway serves HTTPS.
func (t GatewayTLS) Enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != ""
}

// validate names every bad field; clients with cert_subject need a client CA.
func (t GatewayTLS) validate(clients ClientsConfig) []error {
	var errs []error
	if t.Enabled() && (t.CertFile == "" || t.KeyFile == "") {
		errs = append(errs, errors.New("config gateway.tls: set both cert_file and key_file (the gateway's certificate and key)"))
	}
	if t.ClientCAFile == "" {
		for i, c := range clients {
			if c.CertSubject != "" {
				errs = append(errs, fmt.Errorf("config clients[%d].cert_subject: client %q authenticates by certificate, which needs gateway.tls.client_ca_file (the CA that signs client certificates)", i, c.Name))
			}
		}
	}
	return errs
}

// Config builds the gateway's TLS config, or returns nil when TLS is off:
// serve with tls.NewListener(ln, cfg).
func (t GatewayTLS) Config() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("config gateway.tls.cert_file, key_file: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("config gateway.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config gateway.tls.client_ca_file %s: holds no PEM certificate", t.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
