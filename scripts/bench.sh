#!/usr/bin/env bash
# bench.sh sets up the tools (scripts/setup.sh) and prints reins' latency
# figures, measured against real components: the integration harness starts
# a Temporal dev server, a Kubernetes API server with etcd, Vault and NATS.
#
#   scripts/bench.sh [approval|start|all] [iterations]
#
#   approval  a Slack click, signed as Slack signs it, until the co-signed
#             step's write lands in Kubernetes (credential minted from Vault),
#             beside a bare Temporal signal → activity round trip on the same
#             server; p50, p99, their ratio and where the time goes
#   start     starting a remediation until its first write lands
#
# Iterations default to 30. The figures depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh)"

what=${1:-all}
n=${2:-30}
case "$what" in
  approval) pattern='^BenchmarkApprovalToWrite$' ;;
  start) pattern='^BenchmarkStartToFirstWrite$' ;;
  all) pattern='^(BenchmarkApprovalToWrite|BenchmarkStartToFirstWrite)$' ;;
  *) echo "usage: scripts/bench.sh [approval|start|all] [iterations]" >&2; exit 2 ;;
esac
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "iterations must be a positive integer, got \"$n\"" >&2; exit 2
fi
exec go test -tags integration ./integration/ -run '^$' -bench "$pattern" -benchtime "${n}x" -count 1 -v -timeout 60m
