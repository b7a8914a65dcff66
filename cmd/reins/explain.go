package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/converter"

	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

func newExplainCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "explain ID",
		Short: "Tell a remediation's story from its Temporal history: event, plan, decisions, approvals, actions, undo, end",
		Long: "Read the remediation's history through the Temporal API (not a query: it works without a\n" +
			"worker and on closed remediations) and print one timeline: the triggering event, the plan\n" +
			"and its reasoning, then for each step the policy decision, the co-signatures (who, when,\n" +
			"through what), the credential lease, the action (before → after), the verification and the\n" +
			"compensation, and the end. It checks the hash chain of the audit records in the history.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			logger := g.logger()
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			c, err := workers.DialTemporal(ctx, logger, cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			// The history's payloads are decoded here, with the codec when it is on.
			var dc converter.DataConverter
			pc, err := cfg.PayloadCodec(logger)
			if err != nil {
				return err
			}
			if pc != nil {
				dc = pc.DataConverter()
			}
			e, err := workflows.Explain(ctx, c, args[0], dc)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(e)
			case "text", "":
				return e.WriteText(out)
			}
			return &exitCode{exitError, fmt.Errorf("--output %q: use text or json", output)}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
