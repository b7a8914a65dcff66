#!/usr/bin/env bash
# dev.sh sets up the tools (scripts/setup.sh), builds reins and runs `reins dev`:
# a Temporal dev server with its UI, a real Kubernetes API with simulated nodes,
# a worker, and the demo remediation. Arguments go to `reins dev`
# (e.g. --exit to stop after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh)"
go build -o "$REINS_BIN/reins" ./cmd/reins
exec "$REINS_BIN/reins" dev "$@"
