package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/codec"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/workers"
)

func newGatewayCmd(g *globals) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Serve reins' doors: codec server, event intake, agent API and MCP, approvals API, Slack interactions",
		Long: `Serve reins' front door:
  - /codec/encode, /codec/decode: Temporal's remote codec endpoints, so that
    the Temporal UI shows decoded payloads (point the UI's codec endpoint at
    http://<listen>/codec). Requests need "Authorization: Bearer <token>"
    (gateway.token_file or REINS_GATEWAY_TOKEN), or a browser session from
    /codec/login; CORS answers the Temporal UI's origin.
  - with intake configured: POST /v1/events/alertmanager and
    /v1/events/cloudevents, and the NATS JetStream consumer (intake.nats).
  - with clients configured: the agent API (POST/GET /v1/remediations,
    POST /v1/remediations/{id}/abort), MCP at /mcp, and the approvals API
    that reins approve and reins deny use.
  - with Slack configured: POST /slack/interactions, or Socket Mode.
Every refusal and start is recorded in the gateway's audit chain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Gateway.Listen = listen
			}
			logger := g.logger()
			srv, stop, err := newGateway(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			defer stop()
			ln, err := net.Listen("tcp", gatewayListen(cfg))
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			tlsCfg, err := cfg.Gateway.TLS.Config()
			if err != nil {
				_ = ln.Close()
				return err
			}
			if tlsCfg != nil {
				ln = tls.NewListener(ln, tlsCfg)
			}
			logger.Info("gateway serving", "codec", "http://"+ln.Addr().String()+"/codec", "cors_origins", gatewayOrigins(cfg))
			return srv.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve (default gateway.listen, else 127.0.0.1:8081)")
	return cmd
}

func gatewayListen(cfg workers.Config) string {
	if cfg.Gateway.Listen == "" {
		return "127.0.0.1:8081"
	}
	return cfg.Gateway.Listen
}

// gatewayOrigins are the configured CORS origins, else the Temporal UI's.
func gatewayOrigins(cfg workers.Config) []string {
	if len(cfg.Gateway.CORSOrigins) > 0 {
		return cfg.Gateway.CORSOrigins
	}
	u, err := url.Parse(cfg.TemporalUI)
	if err != nil || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

// newGateway builds the gateway from the config, its doors running until
// ctx ends; call stop once it no longer serves.
func newGateway(ctx context.Context, cfg workers.Config, logger *slog.Logger) (srv *gateway.Server, stop func(), err error) {
	pc, err := cfg.PayloadCodec(logger)
	if err != nil {
		return nil, nil, err
	}
	if pc == nil {
		return nil, nil, errors.New("gateway: the payload codec is off; set codec.transit_key or codec.key_file (the same as the workers')")
	}
	token, err := cfg.Gateway.GatewayToken()
	if err != nil {
		return nil, nil, err
	}
	srv, err = gateway.New(gateway.Options{Codec: pc, Token: token, CORSOrigins: gatewayOrigins(cfg), Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	if !cfg.Intake.Enabled() && len(cfg.Clients) == 0 && !cfg.Slack.Enabled() {
		return srv, func() {}, nil
	}
	// Every other door shares one Temporal client and one audit chain.
	c, err := workers.DialTemporal(ctx, logger, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: %w", err)
	}
	rec, closeSinks, err := openGatewayRecorder(ctx, cfg, logger)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	closeShared := func() { closeSinks(); c.Close() }
	stopIntake, err := mountIntake(ctx, srv, cfg, c, rec, logger) // gateway_intake.go
	if err != nil {
		closeShared()
		return nil, nil, err
	}
	stopDoors, err := mountDoors(ctx, srv, cfg, c, rec, logger) // gateway_doors.go
	if err != nil {
		stopIntake()
		closeShared()
		return nil, nil, err
	}
	return srv, func() { stopDoors(); stopIntake(); closeShared() }, nil
}

// serveGateway runs the gateway on ln until ctx ends; for `reins dev`.
func serveGateway(ctx context.Context, srv *gateway.Server, ln net.Listener, logger *slog.Logger) {
	if err := srv.Serve(ctx, ln); err != nil {
		logger.Error("gateway stopped", "error", err)
	}
}

func newCodecCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "codec", Short: "Payload codec keys"}
	var out string
	keygen := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Write a new AES-256 key file for codec.key_file (rotate: make it key_file, move the old one to old_key_files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			if err := codec.GenerateKeyFile(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	keygen.Flags().StringVar(&out, "out", "", "file to create (0600; never overwritten)")
	cmd.AddCommand(keygen)
	return cmd
}
