package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

// readPlan decodes and validates the plan in file ("-" for stdin).
func readPlan(file string) (remediation.Plan, error) {
	if file == "" {
		return remediation.Plan{}, &exitCode{exitError, errors.New("give the plan with -f FILE (or -f - for standard input)")}
	}
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return remediation.Plan{}, &exitCode{exitError, fmt.Errorf("open plan: %w", err)}
		}
		defer f.Close()
		r = f
	}
	plan, err := remediation.Decode(r)
	if err == nil {
		err = plan.Validate()
	}
	if err != nil {
		return plan, &exitCode{exitError, planError(file, err)}
	}
	return plan, nil
}

// planError lists every field error on its own line.
func planError(file string, err error) error {
	var verr *remediation.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s is invalid; nothing was started:", file)
	for _, fe := range verr.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", fe.Field, fe.Message)
	}
	return errors.New(b.String())
}

func newPlanCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plan", Short: "Work with plan files"}
	var file string
	validate := &cobra.Command{
		Use:   "validate -f plan.json",
		Short: "Check a plan without any server: exit 1 with the field errors if it is invalid",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := readPlan(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "plan is valid: %d step(s), remediation ID %s, digest %s\n", len(plan.Steps), plan.WorkflowID(), plan.Digest())
			return nil
		},
	}
	validate.Flags().StringVarP(&file, "file", "f", "", "plan file (- for standard input)")
	cmd.AddCommand(validate)
	return cmd
}

// startThroughGateway proposes plan to the gateway (client.url) as the
// human its client token authenticates, who becomes the plan's requester.
func startThroughGateway(ctx context.Context, cfg workers.Config, plan remediation.Plan) (gateway.AgentStarted, error) {
	if plan.Requester != (remediation.Requester{}) {
		return gateway.AgentStarted{}, &exitCode{exitError, fmt.Errorf("plan field requester is %q: reins sets the requester from your client token; remove the field", plan.Requester)}
	}
	base, err := cfg.Client.BaseURL()
	if err != nil {
		return gateway.AgentStarted{}, &exitCode{exitError, err}
	}
	token, err := cfg.Client.Token()
	if err != nil {
		return gateway.AgentStarted{}, &exitCode{exitError, err}
	}
	var res gateway.ProposeResponse
	if err := postGateway(ctx, base, token, gateway.RemediationsPath, plan, http.StatusAccepted, &res, "the plan"); err != nil {
		return gateway.AgentStarted{}, err
	}
	if res.ID == "" {
		return gateway.AgentStarted{}, fmt.Errorf("the gateway at %s accepted the plan but named no remediation", base)
	}
	return res.AgentStarted, nil
}

// startOnTemporal starts plan directly on Temporal, with the CLI identity
// (identity.name) as its requester. Nothing authenticates that identity but
// access to Temporal, so it says so: with client.url set, reins start goes
// through the gateway instead.
func startOnTemporal(ctx context.Context, g *globals, cfg workers.Config, plan remediation.Plan, notes io.Writer) (gateway.AgentStarted, error) {
	if err := requesterFor(&plan, cfg); err != nil {
		return gateway.AgentStarted{}, err
	}
	fmt.Fprintf(notes, "starting on Temporal as %s (identity.name): set client.url to start through the gateway, which authenticates you\n", plan.Requester.Name)
	c, err := workers.DialTemporal(ctx, g.logger(), cfg)
	if err != nil {
		return gateway.AgentStarted{}, err
	}
	defer c.Close()
	run, joined, err := workflows.Start(ctx, c, cfg.TaskQueue, workflows.RemediationInput{Plan: plan, Options: remediationOptions(cfg)})
	if err != nil {
		return gateway.AgentStarted{}, err
	}
	return gateway.AgentStarted{ID: run.GetID(), RunID: run.GetRunID(), Joined: joined}, nil
}

// requesterFor sets the plan's requester from the CLI identity.
func requesterFor(plan *remediation.Plan, cfg workers.Config) error {
	if cfg.Identity.Name == "" {
		return &exitCode{exitError, errors.New("no identity: set identity.name in the config, or REINS_IDENTITY")}
	}
	if plan.Requester.Name != "" && plan.Requester.Name != cfg.Identity.Name {
		return &exitCode{exitError, fmt.Errorf("plan field requester is %q but you are %q: reins sets the requester from the authenticated identity; remove the field", plan.Requester, cfg.Identity.Name)}
	}
	plan.Requester = remediation.Requester{Kind: remediation.RequesterHuman, Name: cfg.Identity.Name}
	return nil
}

func remediationOptions(cfg workers.Config) workflows.RemediationOptions {
	return workflows.RemediationOptions{
		VerifyTimeout:   time.Duration(cfg.VerifyTimeout),
		EscalateAfter:   time.Duration(cfg.EscalateAfter),
		ApprovalTimeout: time.Duration(cfg.ApprovalTimeout),
	}
}

func newStartCmd(g *globals) *cobra.Command {
	var (
		file   string
		wait   bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "start -f plan.json [--wait]",
		Short: "Validate a plan and start its remediation; prints the remediation ID",
		Long: "Validate a plan and start its remediation. An invalid plan starts nothing (exit 1).\n" +
			"A plan for an incident that already has a running remediation joins it.\n" +
			"With --wait, waits for the end and exits 0 when Completed, 3 otherwise.\n\n" +
			"With client.url set (or REINS_GATEWAY_URL), the plan goes through the gateway, which\n" +
			"authenticates you by your client token (client.token_file or REINS_CLIENT_TOKEN) and makes\n" +
			"you its requester, so that you cannot co-sign its steps. Without it, the plan starts\n" +
			"directly on Temporal with identity.name as its requester, which only access to Temporal vouches for.",
		Args: cobra.NoArgs,
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
			var started gateway.AgentStarted
			if cfg.Client.URL != "" {
				if started, err = startThroughGateway(ctx, cfg, plan); err != nil {
					return err
				}
			} else if started, err = startOnTemporal(ctx, g, cfg, plan, cmd.ErrOrStderr()); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if started.Joined {
				fmt.Fprintf(cmd.ErrOrStderr(), "a remediation for this incident is already running; joined it\n")
			}
			fmt.Fprintln(out, started.ID)
			fmt.Fprintf(cmd.ErrOrStderr(), "follow it: reins status %s   or   %s/namespaces/%s/workflows/%s\n",
				started.ID, strings.TrimRight(cfg.TemporalUI, "/"), workers.TemporalNamespace(), started.ID)
			if !wait {
				return nil
			}
			c, err := workers.DialTemporal(ctx, g.logger(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := workflows.Result(ctx, c.GetWorkflow(ctx, started.ID, started.RunID))
			if err != nil {
				return err
			}
			if err := printStatus(out, st, output); err != nil {
				return err
			}
			if st.State != remediation.StateCompleted {
				return &exitCode{exitNotCompleted, fmt.Errorf("remediation %s ended %s: %s", st.ID, st.State, st.Reason)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "plan file (- for standard input)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the remediation to end and print its status")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (with --wait)")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show every step's state of a remediation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := workflows.GetStatus(ctx, c, args[0])
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), st, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newAbortCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "abort ID --reason TEXT",
		Short: "Stop a remediation and undo the steps it made, last first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if strings.TrimSpace(reason) == "" {
				return &exitCode{exitError, errors.New("--reason is required: say why, it is recorded")}
			}
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			c, err := workers.DialTemporal(ctx, g.logger(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := workflows.Abort(ctx, c, args[0], workflows.AbortSignal{Reason: reason, By: cfg.Identity.Name}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "abort sent to %s; its steps are being undone (reins status %s)\n", args[0], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	return cmd
}

func printStatus(w io.Writer, st workflows.Status, output string) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "text", "":
	default:
		return &exitCode{exitError, fmt.Errorf("--output %q: use text or json", output)}
	}
	fmt.Fprintf(w, "remediation %s: %s", st.ID, st.State)
	if st.DryRun {
		fmt.Fprint(w, " (dry run)")
	}
	fmt.Fprintln(w)
	if st.Reason != "" {
		fmt.Fprintf(w, "  %s\n", st.Reason)
	}
	fmt.Fprintf(w, "  requested by %s, plan digest %s\n", st.Requester, st.PlanDigest)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATE\tPOLICY\tACTION\tUNDO")
	for _, s := range st.Steps {
		policy := "-"
		if s.Decision != nil {
			policy = fmt.Sprintf("%s/%s", s.Decision.Effect, s.Decision.Risk)
			if s.Decision.Effect == remediation.EffectCosign {
				counted := 0
				for _, a := range s.Approvals {
					if a.Counted {
						counted++
					}
				}
				policy += fmt.Sprintf(" %d/%d %s", counted, s.Decision.Approvers, s.Decision.Group)
			}
		}
		undo := s.Compensation
		if s.Irreversible {
			undo = "IRREVERSIBLE"
		}
		if undo == "" {
			undo = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.Index, s.State, policy, s.Description, undo)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range st.Steps {
		if s.Decision != nil && s.Decision.Effect != remediation.EffectAllow {
			for _, r := range s.Decision.Reasons {
				fmt.Fprintf(w, "  step %d policy: %s\n", s.Index, r)
			}
		}
		for _, a := range s.Approvals {
			verdict := string(a.Verdict)
			if !a.Counted {
				verdict += " (not counted: " + a.Reason + ")"
			}
			fmt.Fprintf(w, "  step %d %s by %s via %s\n", s.Index, verdict, a.Approver.ID, a.Approver.Source)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  step %d error: %s\n", s.Index, s.Error)
		}
	}
	return nil
}
