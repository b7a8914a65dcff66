package main

import (
	"context"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/reins-dev/reins/workers"
)

// dial loads the config and connects to Temporal with its payload codec, for
// commands that need nothing else from the config.
func (g *globals) dial(ctx context.Context) (sdkclient.Client, error) {
	cfg, err := workers.Load(g.configPath)
	if err != nil {
		return nil, err
	}
	return workers.DialTemporal(ctx, g.logger(), cfg)
}
