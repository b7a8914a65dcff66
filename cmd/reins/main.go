// Command reins runs and drives remediations: the worker, the local dev
// stack, and the CLI through which humans and tools start, inspect, approve
// and abort them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	// exitError: bad input or a failure to do what was asked.
	exitError = 1
	// exitNotCompleted: the remediation ended, but not Completed.
	exitNotCompleted = 3
)

// exitCode carries a specific exit code through cobra.
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string { return e.err.Error() }
func (e *exitCode) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "reins:", err)
	var ec *exitCode
	if errors.As(err, &ec) {
		os.Exit(ec.code)
	}
	os.Exit(exitError)
}

// globals are the flags every command shares.
type globals struct {
	configPath string
	logLevel   string
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(g.logLevel))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "reins",
		Short:         "Durable, policy-gated remediations on Temporal",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "config file (YAML or JSON); default $REINS_CONFIG, else built-in defaults")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.AddCommand(
		newWorkerCmd(g),
		newPlanCmd(),
		newStartCmd(g),
		newStatusCmd(g),
		newAbortCmd(g),
		newApproveCmd(g, "approve"),
		newApproveCmd(g, "deny"),
		newPolicyCmd(g),
		newKeygenCmd(),
		newBenchCmd(g),
		newDevCmd(g),
		newGatewayCmd(g),
		newCodecCmd(),
		newClientCmd(),
		newAuditCmd(g),
		newExplainCmd(g),
	)
	return root
}
