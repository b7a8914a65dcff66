#!/usr/bin/env bash
# test.sh sets up the tools (scripts/setup.sh) and runs every check and test:
# formatting, vet, lints (staticcheck, workflowcheck), unit tests, the policy
# bundle's Rego tests, and the integration tests against a real Temporal dev
# server and a real Kubernetes control plane.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh)"

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...
go vet -tags integration ./...

step "staticcheck"
staticcheck ./...

step "workflowcheck (workflow determinism)"
workflowcheck ./workflows/...

step "unit tests"
go test -count=1 ./...

step "policy bundle tests (reins policy test)"
go run ./cmd/reins policy test

step "integration tests"
go test -count=1 -tags integration -timeout 40m ./devstack/ ./workflows/ ./integration/
