package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
)

func newApproveCmd(g *globals, verb string) *cobra.Command {
	var (
		step    int
		comment string
		digest  string
	)
	verdict := remediation.VerdictApprove
	short := "Co-sign a step awaiting approval, through the gateway, as your client token's identity"
	if verb == "deny" {
		verdict = remediation.VerdictDeny
		short = "Deny a step awaiting approval, through the gateway: the remediation is denied and undone"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID --step N",
		Short: short,
		Long: short + `.

The gateway (client.url or REINS_GATEWAY_URL) authenticates you by your client
token (client.token_file or REINS_CLIENT_TOKEN), checks that you may decide the
step (in its approver group, not its requester, not already counted), signs
the approval with its key and signals it. A refusal exits 1 with the reason.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			base, err := cfg.Client.BaseURL()
			if err != nil {
				return &exitCode{exitError, err}
			}
			token, err := cfg.Client.Token()
			if err != nil {
				return &exitCode{exitError, err}
			}
			req := gateway.ApprovalRequest{Step: &step, Verdict: verdict, Comment: comment, Digest: digest}
			res, err := postApproval(cmd.Context(), base, token, args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s of step %d of %s signalled as %s (group %s); reins status %s shows whether it counted\n",
				res.Verdict, res.Step, res.Remediation, res.Approver, res.Group, res.Remediation)
			return nil
		},
	}
	cmd.Flags().IntVar(&step, "step", -1, "index of the step (as reins status shows it)")
	cmd.Flags().StringVar(&comment, "comment", "", "a note recorded with the decision")
	cmd.Flags().StringVar(&digest, "digest", "", "the digest of the step you reviewed (reins status -o json shows it): refused if the step is another version")
	_ = cmd.MarkFlagRequired("step")
	return cmd
}

// maxGatewayAnswer bounds what is read of the gateway's answer.
const maxGatewayAnswer = 64 << 10

// postApproval posts req for remediation id to the gateway at base. A
// refusal or a rejected token is an exitCode error carrying the gateway's
// reason.
func postApproval(ctx context.Context, base, token, id string, req gateway.ApprovalRequest) (gateway.ApprovalResponse, error) {
	var res gateway.ApprovalResponse
	err := postGateway(ctx, base, token, gateway.ApprovalsPath(id), req, http.StatusOK, &res, string(req.Verdict))
	if err == nil && !res.Signalled {
		return res, fmt.Errorf("the gateway at %s answered but did not signal the approval", base)
	}
	return res, err
}

// postGateway posts body (JSON) to path on the gateway at base with the
// client token, and decodes the answer into out when its status is ok. Any
// other answer is an error carrying the gateway's problem detail: an
// exitCode error when the token was rejected or the request refused (what
// names the request in the message), a plain one when the gateway failed.
func postGateway(ctx context.Context, base, token, path string, body any, ok int, out any, what string) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("gateway request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("reach the gateway at %s: %w", base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayAnswer))
	if err != nil {
		return fmt.Errorf("read the gateway's answer: %w", err)
	}
	if resp.StatusCode == ok {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("the gateway at %s answered %s but not with a %s: %.200s", base, resp.Status, what, answer)
		}
		return nil
	}
	var p gateway.Problem
	if json.Unmarshal(answer, &p) != nil || p.Detail == "" {
		return fmt.Errorf("the gateway at %s answered %s: %.200s", base, resp.Status, answer)
	}
	detail := p.Detail
	for _, f := range p.Errors {
		detail += fmt.Sprintf("\n  %s: %s", f.Field, f.Detail)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return &exitCode{exitError, fmt.Errorf("the gateway did not accept your client token (client.token_file or %s): %s", workers.EnvClientToken, detail)}
	case resp.StatusCode >= 500:
		return fmt.Errorf("gateway: %s", detail)
	}
	return &exitCode{exitError, fmt.Errorf("%s refused: %s", what, detail)}
}

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make an Ed25519 approval-signing key: writes the private key to FILE, prints the public key for approvals.trusted_keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &exitCode{exitError, errors.New("--out FILE is required")}
			}
			pub, err := writeSigningKey(out)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the private key (mode 0600)")
	return cmd
}

// writeSigningKey creates a key pair, writes the private key to path and
// returns the public key.
func writeSigningKey(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	return pub, nil
}
