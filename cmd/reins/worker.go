package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/reins-dev/reins/workers"
)

func newWorkerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run a worker: executes remediations from the task queue until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger := g.logger()
			cfg, err := workers.Load(g.configPath)
			if err != nil {
				return err
			}
			kcfg, err := workers.KubeConfig(cfg.Kubeconfig)
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(kcfg)
			if err != nil {
				return fmt.Errorf("build Kubernetes client: %w", err)
			}
			c, err := workers.DialTemporal(ctx, logger, cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			w, err := workers.NewWorker(cfg, c, kube, logger)
			if err != nil {
				return err
			}
			logger.Info("worker running", "task_queue", cfg.TaskQueue)
			return w.Run(ctx)
		},
	}
}
