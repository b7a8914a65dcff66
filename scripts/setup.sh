#!/usr/bin/env bash
# setup.sh builds the external programs reins runs against (Temporal CLI, etcd,
# kube-apiserver/controller-manager/scheduler, kwok, Vault) and the linters
# (staticcheck, workflowcheck) from the Go module proxy into a cache folder outside the repository, so that every clone on this
# machine reuses them. A program already on PATH is used as it is.
#
#   REINS_BIN   where the programs go (default: ~/.cache/reins/bin)
#
# It prints, last, the line to eval for PATH:  eval "$(scripts/setup.sh)"
# Everything else goes to stderr.
set -euo pipefail

REINS_BIN=${REINS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/reins/bin}
mkdir -p "$REINS_BIN"
REINS_BIN=$(cd "$REINS_BIN" && pwd)
work=$(dirname "$REINS_BIN")/build
mkdir -p "$work"
export GOFLAGS=-mod=mod
export PATH="$REINS_BIN:$PATH"

TEMPORAL_CLI_VERSION=v1.5.1
ETCD_VERSION=v3.6.16
K8S_VERSION=1.37.2
KWOK_VERSION=v0.8.0
VAULT_VERSION=v1.21.0
STATICCHECK_VERSION=v0.8.2
WORKFLOWCHECK_VERSION=v0.6.0

log() { printf 'setup: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

# scratch NAME: a fresh module folder for building a program whose go.mod
# carries replace directives (go install refuses those).
scratch() {
  local dir="$work/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && printf 'module reins.build/%s\n\ngo 1.26\n' "$1" >go.mod)
  printf '%s' "$dir"
}

build_temporal() {
  have temporal && return
  log "building temporal CLI $TEMPORAL_CLI_VERSION (about 4 minutes the first time)"
  GOBIN="$REINS_BIN" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
}

build_etcd() {
  have etcd && return
  log "building etcd $ETCD_VERSION"
  local dir; dir=$(scratch etcd)
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 &&
    go build -o "$REINS_BIN/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  local stages="$REINS_BIN/../kwok-stages"
  if ! have kwok; then
    log "building kwok $KWOK_VERSION"
    GOBIN="$REINS_BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  fi
  if [ ! -f "$stages/.done" ]; then
    local src
    src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
    rm -rf "$stages" && mkdir -p "$stages"
    cp "$src"/kustomize/stage/node/fast/*.yaml "$stages"/
    cp "$src"/kustomize/stage/node/heartbeat/*.yaml "$stages"/
    cp "$src"/kustomize/stage/pod/fast/*.yaml "$stages"/
    rm -f "$stages"/kustomization.yaml
    chmod 0644 "$stages"/*.yaml
    touch "$stages/.done"
  fi
}

build_kube() {
  have kube-apiserver && have kube-controller-manager && have kube-scheduler && return
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $K8S_VERSION (about 27 minutes the first time)"
  local dir; dir=$(scratch kube)
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    printf 'require k8s.io/kubernetes v%s\n' "$K8S_VERSION"
    # k8s.io/kubernetes points its staging modules at ./staging; use the released ones.
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 v0.'"${K8S_VERSION#1.}"'#p' "$gomod"
  } >>"$dir/go.mod"
  local v=k8s.io/component-base/version minor=${K8S_VERSION#*.}
  minor=${minor%%.*}
  local ldflags="-X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=${K8S_VERSION%%.*} -X $v.gitMinor=$minor"
  (cd "$dir" && printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' >tools.go &&
    go mod tidy >&2 &&
    go build -ldflags "$ldflags" -o "$REINS_BIN/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
}

build_vault() {
  have vault && return
  log "building vault $VAULT_VERSION (about 15 minutes the first time)"
  local dir; dir=$(scratch vault)
  cat >>"$dir/go.mod" <<MOD
replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3
replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
MOD
  (cd "$dir" && go get "github.com/hashicorp/vault@$VAULT_VERSION" >&2 &&
    go build -o "$REINS_BIN/vault" github.com/hashicorp/vault)
}

build_linters() {
  have staticcheck || GOBIN="$REINS_BIN" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  have workflowcheck || GOBIN="$REINS_BIN" go install "go.temporal.io/sdk/contrib/tools/workflowcheck@$WORKFLOWCHECK_VERSION"
}

build_linters
build_temporal
build_etcd
build_kwok
build_kube
build_vault
log "tools ready in $REINS_BIN"
printf 'export PATH=%q:"$PATH"; export REINS_BIN=%q\n' "$REINS_BIN" "$REINS_BIN"
