package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/converter"
	"k8s.io/client-go/rest"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/examples"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
)

// latencies are measured durations; String gives nearest-rank percentiles.
type latencies []time.Duration

func (l latencies) at(p int) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func (l latencies) String() string {
	if len(l) == 0 {
		return "no samples"
	}
	var total time.Duration
	for _, d := range l {
		total += d
	}
	r := func(d time.Duration) time.Duration {
		if d < time.Millisecond {
			return d.Round(100 * time.Nanosecond)
		}
		return d.Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s, mean %s (n=%d)", r(l.at(50)), r(l.at(99)), r(l.at(100)), r(total/time.Duration(len(l))), len(l))
}

func newBenchCredentialsCmd(g *globals) *cobra.Command {
	var (
		n           int
		environment string
		namespace   string
		node        bool
		interval    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "credentials [-n N] --environment E --namespace NS",
		Short: "Per-step cost of a Vault credential: mint (kubernetes/creds) + revoke (sys/leases/revoke, sync), p50 and p99",
		Long: `Mints and revokes N step credentials one after the other, exactly as a
step does (the config's vault section and role mapping), and prints the
latency of minting, of revoking, and of both. Needs Vault configured as
deploy/ describes (reins dev does it: REINS_CONFIG=<dev dir>/config.yaml,
--environment production --namespace shop).

Credentials start --interval apart, as steps do (each is followed by its
verification). Vault's Kubernetes engine talks to the API server through a
client limited to 5 requests a second (burst 10), and a mint plus its
revocation takes 4 or 5 requests: with --interval 0 the figures measure that
limit, not a step's cost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return errors.New("-n must be at least 1")
			}
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			logger := g.logger()
			vc, err := cfg.Vault.NewVaultClient(logger)
			if err != nil {
				return err
			}
			kcfg, err := workers.KubeConfig(cfg.Kubeconfig)
			if err != nil {
				return err
			}
			creds := &activities.VaultCredentials{
				Vault: vc, Mount: cfg.Vault.KubernetesMount, Cluster: rest.AnonymousClientConfig(kcfg),
				Roles: activities.RoleMap{Roles: cfg.Vault.Roles, NodeRoles: cfg.Vault.NodeRoles, ClusterNamespace: cfg.Vault.ClusterNamespace},
			}
			target := remediation.Target{Kind: remediation.KindDeployment, Namespace: namespace, Name: "bench"}
			if node {
				target = remediation.Target{Kind: remediation.KindNode, Name: "bench"}
			}
			choice, err := creds.Roles.Choose(remediation.StepRef{Environment: environment, Step: remediation.Step{Target: target}})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var mint, revoke, both latencies
			tick := time.NewTicker(max(interval, time.Nanosecond))
			defer tick.Stop()
			for i := range n {
				if i > 0 && interval > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-tick.C:
					}
				}
				start := time.Now()
				cred, err := creds.Mint(ctx, choice)
				if err != nil {
					return fmt.Errorf("mint %d of %d: %w", i+1, n, err)
				}
				minted := time.Now()
				if err := cred.Release(context.WithoutCancel(ctx)); err != nil {
					return fmt.Errorf("revoke %d of %d: %w", i+1, n, err)
				}
				end := time.Now()
				mint, revoke, both = append(mint, minted.Sub(start)), append(revoke, end.Sub(minted)), append(both, end.Sub(start))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "step credential, role %s in %s, Vault %s, one every %s:\n", choice.Role, choice.Namespace, vc.Addr(), interval)
			fmt.Fprintf(out, "  mint           %s\n", mint)
			fmt.Fprintf(out, "  revoke (sync)  %s\n", revoke)
			fmt.Fprintf(out, "  mint + revoke  %s\n", both)
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 50, "credentials to mint and revoke")
	cmd.Flags().StringVar(&environment, "environment", "production", "the plan environment (chooses the Vault role)")
	cmd.Flags().StringVar(&namespace, "namespace", "shop", "the target namespace (must be in that environment)")
	cmd.Flags().BoolVar(&node, "node", false, "measure a Node step's (cluster-scoped) credential instead")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between the starts of two credentials (0: back to back)")
	return cmd
}

func newBenchCodecCmd(g *globals) *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "codec [-n N]",
		Short: "Cost per payload of the payload codec (AES-256-GCM): encode and decode, p50 and p99",
		Long: `Encodes and decodes N times a typical payload (the input of the sample
plan's first step) with the configured codec (codec.transit_key: data keys
from Vault, cached; codec.key_file), or with a fresh key file when the codec
is off, and prints the latency of each.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return errors.New("-n must be at least 1")
			}
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			pc, err := cfg.PayloadCodec(g.logger())
			if err != nil {
				return err
			}
			kind := "codec.transit_key " + cfg.Codec.TransitKey
			if cfg.Codec.TransitKey == "" {
				kind = "codec.key_file"
			}
			if pc == nil {
				dir, err := os.MkdirTemp("", "reins-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				path := filepath.Join(dir, "bench.key")
				if err := codec.GenerateKeyFile(path); err != nil {
					return err
				}
				keys, err := codec.LoadFileKeys(path)
				if err != nil {
					return err
				}
				pc, kind = &codec.Codec{Keys: keys}, "a fresh key file (the codec is off in the config)"
			}
			plan, err := remediation.DecodeBytes(examples.CheckoutRollback)
			if err != nil {
				return err
			}
			in := remediation.ExecuteInput{StepRef: remediation.StepRef{Remediation: "reins-bench", Step: plan.Steps[0], Requester: plan.Requester, Environment: plan.Environment}, At: time.Now()}
			payloads, err := converter.GetDefaultDataConverter().ToPayloads(in)
			if err != nil {
				return err
			}
			// The first encode may fetch a data key from Vault: not per payload.
			if _, err := pc.Encode(payloads.Payloads); err != nil {
				return err
			}
			var enc, dec latencies
			for i := range n {
				start := time.Now()
				sealed, err := pc.Encode(payloads.Payloads)
				if err != nil {
					return fmt.Errorf("encode %d of %d: %w", i+1, n, err)
				}
				mid := time.Now()
				if _, err := pc.Decode(sealed); err != nil {
					return fmt.Errorf("decode %d of %d: %w", i+1, n, err)
				}
				enc, dec = append(enc, mid.Sub(start)), append(dec, time.Since(mid))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "payload codec (AES-256-GCM, %s), %d-byte payload:\n", strings.TrimSpace(kind), len(payloads.Payloads[0].Data))
			fmt.Fprintf(out, "  encode  %s\n", enc)
			fmt.Fprintf(out, "  decode  %s\n", dec)
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 10000, "payloads to encode and decode")
	return cmd
}
