package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/policies"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure reins' hot paths on this machine and print the figures"}
	var (
		n   int
		dir string
	)
	policy := &cobra.Command{
		Use:   "policy [-n N] [--dir DIR]",
		Short: "Latency of one policy decision on a typical input (p50, p99)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			engine, err := policies.New(policies.Options{Dir: dir, Logger: g.logger()})
			if err != nil {
				return err
			}
			lat, err := engine.Measure(cmd.Context(), policies.TypicalInput(), n)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy decision (bundle %.12s, %s): %s\n", engine.Digest(), lat.Decision.Effect, lat)
			return nil
		},
	}
	policy.Flags().IntVarP(&n, "n", "n", 20000, "decisions to measure")
	policy.Flags().StringVar(&dir, "dir", "", "bundle folder (default: the built-in bundle)")
	cmd.AddCommand(policy, newBenchCredentialsCmd(g), newBenchCodecCmd(g), newBenchIntakeCmd(g))
	return cmd
}
