package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

func newApproveCmd(g *globals, verb string) *cobra.Command {
	var (
		step    int
		comment string
	)
	verdict := remediation.VerdictApprove
	short := "Co-sign a step awaiting approval, as your configured identity"
	if verb == "deny" {
		verdict = remediation.VerdictDeny
		short = "Deny a step awaiting approval: the remediation is denied and undone"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID --step N",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			key, err := cfg.Approvals.SigningKey()
			if err != nil {
				return err
			}
			c, err := workers.DialTemporal(ctx, g.logger(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := workflows.GetStatus(ctx, c, args[0])
			if err != nil {
				return err
			}
			a, err := approvalFor(st, step, cfg.Identity, verdict, comment)
			if err != nil {
				return &exitCode{exitError, err}
			}
			a = a.Sign(cfg.Approvals.SigningKeyID, key)
			if err := workflows.Approve(ctx, c, a); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s of step %d of %s sent as %s (group %s); reins status %s shows whether it counted\n",
				verdict, step, st.ID, a.Approver.ID, a.Group, st.ID)
			return nil
		},
	}
	cmd.Flags().IntVar(&step, "step", -1, "index of the step (as reins status shows it)")
	cmd.Flags().StringVar(&comment, "comment", "", "a note recorded with the decision")
	return cmd
}

// approvalFor builds the approval of step for who, refusing early what the
// workflow would not count anyway.
func approvalFor(st workflows.Status, step int, who workers.Identity, verdict remediation.Verdict, comment string) (remediation.Approval, error) {
	if step < 0 || step >= len(st.Steps) {
		return remediation.Approval{}, fmt.Errorf("--step %d: remediation %s has steps 0 to %d", step, st.ID, len(st.Steps)-1)
	}
	s := st.Steps[step]
	if s.State != remediation.StepAwaitingApproval || s.Decision == nil {
		return remediation.Approval{}, fmt.Errorf("step %d is %s, not awaiting approval", step, s.State)
	}
	group := ""
	switch {
	case slices.Contains(who.Groups, s.Decision.Group):
		group = s.Decision.Group
	case s.Escalated && s.Decision.EscalationGroup != "" && slices.Contains(who.Groups, s.Decision.EscalationGroup):
		group = s.Decision.EscalationGroup
	default:
		return remediation.Approval{}, fmt.Errorf("%s is not in group %q, which must co-sign step %d (your groups: %v)", who.Name, s.Decision.Group, step, who.Groups)
	}
	return remediation.Approval{
		Remediation: st.ID,
		StepDigest:  s.Digest,
		Approver:    remediation.Approver{ID: who.Name, Name: who.Name, Source: "cli"},
		Group:       group,
		Verdict:     verdict,
		Comment:     comment,
		At:          time.Now().UTC(),
	}, nil
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
