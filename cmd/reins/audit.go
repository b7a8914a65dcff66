package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/audit"
	"github.com/reins-dev/reins/workers"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the audit trail (hash-chained CloudEvents records)"}
	var (
		from, id, run, file, output string
		allowOpen                   bool
	)
	verify := &cobra.Command{
		Use:   "verify --remediation ID [--from nats|file]",
		Short: "Read a remediation's audit chain back from a sink and check it",
		Long: "Read a remediation's audit records back from NATS or the audit file and check the chain:\n" +
			"every record well-formed with its id the SHA-256 of its content, numbered 1, 2, 3… in\n" +
			"order, each naming the record before it (prev), and the last one the end record.\n" +
			"Prints OK with the count, or exits 1 naming the first altered, missing, reordered or\n" +
			"duplicated record. The sinks come from the config (audit.nats, audit.file).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return &exitCode{exitError, errors.New("--remediation ID is required")}
			}
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			if file != "" {
				cfg.Audit.File.Path = file
				if from == "" {
					from = "file"
				}
			}
			if from == "" {
				from = "nats"
			}
			records, err := workers.ReadAudit(cmd.Context(), cfg.Audit, from, id, g.logger())
			if err != nil {
				return &exitCode{exitError, err}
			}
			reports := audit.VerifyRuns(id, run, records, allowOpen)
			out := cmd.OutOrStdout()
			var failed []string
			for _, rep := range reports {
				if !rep.OK() {
					failed = append(failed, rep.String())
				}
			}
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
					return err
				}
			case "text", "":
				for _, rep := range reports {
					if rep.OK() {
						fmt.Fprintln(out, rep.String())
					}
				}
			default:
				return &exitCode{exitError, fmt.Errorf("--output %q: use text or json", output)}
			}
			if len(failed) > 0 {
				return &exitCode{exitError, fmt.Errorf("%s (read from %s)", strings.Join(failed, "; "), from)}
			}
			return nil
		},
	}
	verify.Flags().StringVar(&from, "from", "", "sink to read: nats (default) or file; a webhook cannot be read back")
	verify.Flags().StringVar(&id, "remediation", "", "remediation (workflow) ID")
	verify.Flags().StringVar(&run, "run", "", "verify only this run of the remediation (default: every run found)")
	verify.Flags().StringVar(&file, "file", "", "audit file to read (default audit.file.path; implies --from file)")
	verify.Flags().BoolVar(&allowOpen, "allow-open", false, "accept a chain without an end record (a remediation still running)")
	verify.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.AddCommand(verify)
	return cmd
}
