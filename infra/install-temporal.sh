#!/usr/bin/env bash
# Builds the Temporal CLI (which embeds the dev server) with 'go install' into
# $TOLLGATE_CACHE_DIR/temporal-<version>/bin. Later tags than 1.5.1 carry a
# 'replace' directive and cannot be go-installed.
source "$(dirname "$0")/lib.sh"

install_temporal() {
  if [ -x "$TEMPORAL_BIN" ]; then
    log "temporal: $TEMPORAL_BIN already installed"
    return 0
  fi
  need_cmd go "Install Go >= 1.25 (https://go.dev/doc/install) or set TEMPORAL_ADDRESS to a running Temporal server."
  log "temporal: building github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION (several minutes the first time)"
  mkdir -p "$TEMPORAL_HOME/bin"
  local tmp="$TEMPORAL_HOME/bin.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" \
    || die "temporal: 'go install' failed (see above); check the Go module proxy or set TEMPORAL_ADDRESS"
  mv "$tmp/temporal" "$TEMPORAL_BIN"
  rm -rf "$tmp"
  log "temporal: installed $("$TEMPORAL_BIN" --version)"
}

with_lock temporal install_temporal
