package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/policies"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test and inspect the policy bundle"}
	var dir string
	test := &cobra.Command{
		Use:   "test [--dir DIR]",
		Short: "Run the bundle's Rego unit tests; fails on any failure",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			report, err := policies.Test(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if err := report.WriteText(cmd.OutOrStdout()); err != nil {
				return err
			}
			if !report.OK() {
				return fmt.Errorf("%d policy test(s) failed, %d errored", report.Failed, report.Errored)
			}
			return nil
		},
	}
	test.Flags().StringVar(&dir, "dir", "", "bundle folder (default: the built-in bundle)")

	var (
		file   string
		output string
	)
	eval := &cobra.Command{
		Use:   "eval -f plan.json [--output json]",
		Short: "Print each step's policy decision without starting anything (no cluster state: rules that need it are skipped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			plan, err := readPlan(file)
			if err != nil {
				return err
			}
			if plan.Requester.Name == "" {
				if err := requesterFor(&plan, cfg); err != nil {
					return err
				}
			}
			if dir == "" {
				dir = cfg.PolicyDir
			}
			engine, err := policies.New(policies.Options{Dir: dir, Logger: g.logger()})
			if err != nil {
				return err
			}
			type row struct {
				Step      int                `json:"step"`
				Action    remediation.Action `json:"action"`
				Effect    remediation.Effect `json:"effect"`
				Approvers int                `json:"approvers"`
				Group     string             `json:"group,omitempty"`
				Risk      remediation.Risk   `json:"risk"`
				Reasons   []string           `json:"reasons"`
				Bundle    string             `json:"bundle"`
			}
			rows := make([]row, 0, len(plan.Steps))
			now := time.Now().UTC()
			for i, s := range plan.Steps {
				d := engine.Decide(ctx, policies.NewInput(plan, i, now, nil, nil))
				rows = append(rows, row{i, s.Action, d.Effect, d.Approvers, d.Group, d.Risk, d.Reasons, d.Bundle})
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			case "text", "":
			default:
				return &exitCode{exitError, fmt.Errorf("--output %q: use text or json", output)}
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STEP\tACTION\tEFFECT\tRISK\tAPPROVERS\tREASONS")
			for _, r := range rows {
				approvers := "-"
				if r.Effect == remediation.EffectCosign {
					approvers = fmt.Sprintf("%d of %s", r.Approvers, r.Group)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Step, r.Action, r.Effect, r.Risk, approvers, strings.Join(r.Reasons, "; "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "bundle %s\n", engine.Digest())
			return nil
		},
	}
	eval.Flags().StringVarP(&file, "file", "f", "", "plan file (- for standard input)")
	eval.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	eval.Flags().StringVar(&dir, "dir", "", "bundle folder (default: policy_dir from the config, else the built-in bundle)")
	var initDir string
	initCmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Write the built-in bundle into DIR, to start your own from it (never overwrites)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if initDir == "" {
				return &exitCode{exitError, fmt.Errorf("--dir is required")}
			}
			if err := policies.WriteDefaultBundle(initDir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the built-in bundle to %s; test it with reins policy test --dir %s, use it with policy_dir: %s\n", initDir, initDir, initDir)
			return nil
		},
	}
	initCmd.Flags().StringVar(&initDir, "dir", "", "folder to write the bundle into")
	cmd.AddCommand(test, eval, initCmd)
	return cmd
}
