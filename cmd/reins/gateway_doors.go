package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/workers"
)

// mountDoors mounts the doors that take authenticated clients and Slack:
//   - with clients configured: the agent API (POST/GET /v1/remediations,
//     POST /v1/remediations/{id}/abort), MCP (/mcp), and the approvals API
//     (POST /v1/remediations/{id}/approvals) that `reins approve` uses;
//   - with Slack configured: the interactivity endpoint (POST
//     /slack/interactions), or the Socket Mode connection, which runs until
//     ctx ends.
//
// Approvals are signed with the gateway's key (approvals.signing_key_file
// or signing_key_vault). stop, called once srv no longer serves, waits for
// the Slack clicks in hand.
func mountDoors(ctx context.Context, srv *gateway.Server, cfg workers.Config, c sdkclient.Client, rec *gateway.Recorder, logger *slog.Logger) (stop func(), err error) {
	if len(cfg.Clients) == 0 && !cfg.Slack.Enabled() {
		return func() {}, nil
	}
	key, err := cfg.GatewaySigningKey(ctx, logger)
	if err != nil {
		return nil, fmt.Errorf("gateway: approvals need the gateway's signing key: %w", err)
	}
	desk, err := gateway.NewDesk(gateway.DeskOptions{
		Remediations: gateway.TemporalDeskRemediations(c),
		Signer:       gateway.Signer{KeyID: cfg.Approvals.SigningKeyID, Key: key},
		Recorder:     rec, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.Clients) > 0 {
		clients, err := cfg.Clients.Authenticator()
		if err != nil {
			return nil, err
		}
		api, err := gateway.NewAgentAPI(gateway.AgentAPIOptions{
			Remediations: gateway.TemporalAgentRemediations{Client: c, TaskQueue: cfg.TaskQueue, Options: remediationOptions(cfg)},
			Auth:         clients, Limiter: clients, Recorder: rec,
			TemporalUI: cfg.TemporalUI, Namespace: workers.TemporalNamespace(), Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		api.Mount(srv)
		api.MountMCP(srv)
		srv.Handle(gateway.ApprovalsPattern, gateway.NewApprovalsAPI(desk, clients))
		logger.Info("gateway: agent API, MCP and approvals API mounted", "clients", len(cfg.Clients))
	}
	if !cfg.Slack.Enabled() {
		return func() {}, nil
	}
	door, runner, err := cfg.SlackDoor(desk, rec, logger)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	if runner == nil {
		srv.Handle(gateway.SlackInteractionsPattern, door)
		logger.Info("gateway: Slack interactivity endpoint mounted", "path", gateway.SlackInteractionsPattern)
	} else {
		wg.Go(func() {
			if err := runner.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("gateway: Slack Socket Mode stopped", "error", err)
			}
		})
		logger.Info("gateway: Slack Socket Mode connecting")
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := door.Shutdown(sctx); err != nil {
			logger.Warn("gateway: Slack clicks still in hand at shutdown", "error", err)
		}
		wg.Wait()
	}, nil
}
