package workers

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// SigningKeyVaultField is the field of the approvals.signing_key_vault
// secret that holds the key.
const SigningKeyVaultField = "signing_key"

// validateSigningKey names a signing key configured twice, or a Vault path
// that is not a KV v2 data path.
func (a ApprovalConfig) validateSigningKey() []error {
	var errs []error
	if a.SigningKeyFile != "" && a.SigningKeyVault != "" {
		errs = append(errs, errors.New("config approvals.signing_key_vault: set it or approvals.signing_key_file, not both"))
	}
	if a.SigningKeyVault != "" && !strings.Contains(strings.Trim(a.SigningKeyVault, "/"), "/data/") {
		errs = append(errs, fmt.Errorf("config approvals.signing_key_vault: %q is not the API path of a KV v2 secret, such as \"secret/data/reins/gateway\" (mount, then data/, then the secret's path)", a.SigningKeyVault))
	}
	return errs
}

// GatewaySigningKey reads the gateway's approval-signing key: from Vault
// (approvals.signing_key_vault, with the vault section's client) or from
// approvals.signing_key_file. Read it once, when the gateway starts.
func (c Config) GatewaySigningKey(ctx context.Context, logger *slog.Logger) (ed25519.PrivateKey, error) {
	a := c.Approvals
	if errs := a.validateSigningKey(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if a.SigningKeyVault == "" {
		return a.SigningKey()
	}
	vc, err := c.Vault.NewVaultClient(logger)
	if err != nil {
		return nil, fmt.Errorf("config approvals.signing_key_vault: %w", err)
	}
	path := strings.Trim(a.SigningKeyVault, "/")
	s, err := vc.Read(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("config approvals.signing_key_vault: read %s from Vault: %w", path, err)
	}
	where := "config approvals.signing_key_vault " + path
	if s == nil {
		return nil, fmt.Errorf("%s: no such secret in Vault (write it with: vault kv put %s %s=<base64 key from `reins keygen`>)", where, strings.Replace(path, "/data/", "/", 1), SigningKeyVaultField)
	}
	data, _ := s.Data["data"].(map[string]any)
	text, ok := data[SigningKeyVaultField].(string)
	if !ok {
		return nil, fmt.Errorf("%s: the secret has no string field %q (is it a KV v2 secret?)", where, SigningKeyVaultField)
	}
	return parseSigningKey(text, where)
}

// parseSigningKey decodes the base64 text of an Ed25519 private key read
// from where.
func parseSigningKey(text, where string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(b) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%s: must hold the base64 of a %d-byte Ed25519 private key (see `reins keygen`)", where, ed25519.PrivateKeySize)
	}
	return ed25519.PrivateKey(b), nil
}
