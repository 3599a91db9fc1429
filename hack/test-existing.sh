#!/usr/bin/env bash
# `make test-existing` (pytest --cluster=existing) against a cluster that this script starts
# with `make cluster-up` and stops afterwards, whatever happens. The tests reach it only
# through its kubeconfig, as they would reach a kind cluster; its real nodes get the examples'
# images the way kind's get them with `kind load` (the operator, trainer and server images are
# loaded by cluster-up). Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d "${TMPDIR:-/tmp}/modelops-existing.XXXXXX")
down() { make --no-print-directory cluster-down STATE_DIR="$state" >/dev/null || true; rm -rf "$state"; }
trap down EXIT

step() { # step NAME CMD...
  local name=$1 start; shift
  start=$(date +%s)
  "$@"
  echo "[test-existing] $name: $(( $(date +%s) - start ))s"
}

step "cluster-up" make --no-print-directory cluster-up STATE_DIR="$state"
step "load the examples' images" make --no-print-directory cluster-load STATE_DIR="$state" \
  IMAGES="ghcr.io/modelops/example-sklearn-iris:0.1.0 ghcr.io/modelops/example-lightgbm-diabetes:0.1.0"
step "make test-existing" env KUBECONFIG="$state/admin.kubeconfig" \
  make --no-print-directory test-existing
