package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/gateway"
)

func newClientCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Clients of the gateway: agents and humans (the clients: config section)"}
	var name, kind, out string
	token := &cobra.Command{
		Use:   "token --name NAME [--kind agent|human] [--out FILE]",
		Short: "Make a new client token: give the token to the client, put its SHA-256 in the gateway's clients config",
		Long: `Make a new random client token (256 bits) and print the clients: entry that
authenticates it, which holds only the token's SHA-256: the gateway never stores
the token. Give the token to the client once (--out writes it to a new 0600 file
instead of printing it); the client sends "Authorization: Bearer <token>".
To rotate, make a new token and replace the entry's token_sha256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required: the client's name (an agent's plans carry it as their requester)")
			}
			if kind != gateway.KindAgent && kind != gateway.KindHuman {
				return fmt.Errorf("--kind must be %q or %q, got %q", gateway.KindAgent, gateway.KindHuman, kind)
			}
			tok, sum, err := gateway.NewClientToken()
			if err != nil {
				return err
			}
			// The entry is checked as the gateway will check it.
			entry := gateway.Client{Principal: gateway.Principal{Name: name, Kind: kind}, TokenSHA256: sum}
			if kind == gateway.KindHuman {
				entry.Groups = []string{"GROUP"}
			}
			if _, err := gateway.NewClients([]gateway.Client{entry}); err != nil {
				return fmt.Errorf("--name %q --kind %s: the gateway would refuse this client: %w", name, kind, err)
			}
			w := cmd.OutOrStdout()
			if out != "" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if _, err := fmt.Fprintln(f, tok); err != nil {
					f.Close()
					return fmt.Errorf("--out: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				fmt.Fprintf(w, "# token written to %s: give it to %s\n", out, name)
			} else {
				fmt.Fprintf(w, "# token for %s (shown once; reins keeps only its hash):\n# %s\n", name, tok)
			}
			fmt.Fprintf(w, "# add to clients: in the gateway's config:\n- name: %s\n  kind: %s\n  token_sha256: %s\n", name, kind, sum)
			if kind == gateway.KindHuman {
				fmt.Fprintln(w, "  groups: [GROUP]   # the approver groups this human belongs to")
			} else {
				fmt.Fprintln(w, "  # owner: HUMAN@EXAMPLE.COM   # the e-mail of the human accountable for this agent (may not co-sign its steps)")
				fmt.Fprintln(w, "  # rate: 30/m      # calls allowed (default 30/m, burst 10)")
			}
			return nil
		},
	}
	token.Flags().StringVar(&name, "name", "", "the client's name (letters, digits, . _ @ -); a human's is their e-mail address, as Slack knows them")
	token.Flags().StringVar(&kind, "kind", gateway.KindAgent, "agent or human")
	token.Flags().StringVar(&out, "out", "", "write the token to this new file (0600, never overwritten) instead of printing it")
	cmd.AddCommand(token)
	return cmd
}
