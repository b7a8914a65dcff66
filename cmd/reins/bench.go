package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/policies"
)

// Bounds of `reins bench policy`: each decision's duration is kept, 8 bytes.
const (
	maxBenchDecisions = 10_000_000
	maxBenchRuns      = 100
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure reins' hot paths on this machine and print the figures"}
	var (
		n, runs int
		dir     string
	)
	policy := &cobra.Command{
		Use:   "policy [-n N] [--runs R] [--dir DIR]",
		Short: "Latency of one policy decision on a typical input (p50, p99)",
		Long: `Latency of one policy decision on a typical input (p50, p99).

Each run makes N decisions one after the other, after up to 500 that are
not timed, and prints their percentiles, allocations and garbage collections
(with the collector's CPU time); with --runs above 1, a last line gives the
range of p50 and p99 over the runs. A last line times a busy loop as long as
the median p50, allocating nothing, N times: its p99 is what this machine
alone does to such a computation, the floor of a decision's p99 here.
Figures taken on a busy machine are high:
compare runs. The p99 follows the collector, which runs far more often in
this small process than in a worker: the GOGC environment variable shows its
share (GOGC=400, or GOGC=off for none).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || n > maxBenchDecisions {
				return fmt.Errorf("-n is %d; give 1 to %d decisions", n, maxBenchDecisions)
			}
			if runs < 1 || runs > maxBenchRuns {
				return fmt.Errorf("--runs is %d; give 1 to %d", runs, maxBenchRuns)
			}
			engine, err := policies.New(policies.Options{Dir: dir, Logger: g.logger()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var p50s, p99s []time.Duration
			for range runs {
				lat, err := engine.Measure(cmd.Context(), policies.TypicalInput(), n)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "policy decision (bundle %.12s, %s): %s\n", engine.Digest(), lat.Decision.Effect, lat)
				p50s, p99s = append(p50s, lat.P50), append(p99s, lat.P99)
			}
			if runs > 1 {
				fmt.Fprintf(out, "%d runs: p50 %s to %s, p99 %s to %s\n", runs, slices.Min(p50s), slices.Max(p50s), slices.Min(p99s), slices.Max(p99s))
			}
			// What the machine alone does to a computation as long as a
			// decision: no decision's p99 can be lower here.
			slices.Sort(p50s)
			floor, err := policies.MeasureFloor(cmd.Context(), p50s[len(p50s)/2], n)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "this machine's floor: %s\n", floor)
			return nil
		},
	}
	policy.Flags().IntVarP(&n, "n", "n", 20000, fmt.Sprintf("decisions to measure per run (at most %d)", maxBenchDecisions))
	policy.Flags().IntVar(&runs, "runs", 1, fmt.Sprintf("measurements to make, one after the other (at most %d)", maxBenchRuns))
	policy.Flags().StringVar(&dir, "dir", "", "bundle folder (default: the built-in bundle)")
	cmd.AddCommand(policy, newBenchCredentialsCmd(g), newBenchCodecCmd(g), newBenchIntakeCmd(g))
	return cmd
}
