#!/usr/bin/env bash
# Shared settings for the infra scripts. Sourced, never executed.
# Every component is installed into a per-user cache keyed by component and
# version, so fresh clones on one machine reuse it and a fresh machine builds it.
set -euo pipefail

TOLLGATE_CACHE_DIR="${TOLLGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate}"
TEMPORAL_CLI_VERSION="${TEMPORAL_CLI_VERSION:-1.5.1}"
DYNAMODB_LOCAL_VERSION="${DYNAMODB_LOCAL_VERSION:-2.6.1}"
SQLITE4JAVA_VERSION="${SQLITE4JAVA_VERSION:-1.0.392}"

TEMPORAL_HOME="$TOLLGATE_CACHE_DIR/temporal-$TEMPORAL_CLI_VERSION"
TEMPORAL_BIN="$TEMPORAL_HOME/bin/temporal"
DYNAMODB_HOME="$TOLLGATE_CACHE_DIR/dynamodb-local-$DYNAMODB_LOCAL_VERSION"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

need_cmd() {
  # need_cmd <command> <how to fix>
  command -v "$1" >/dev/null 2>&1 || die "'$1' is missing. $2"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    die "installing needs root: run '$*' as root"; fi
}

# Serialise concurrent installers (two clones starting at once) per component.
with_lock() {
  local name="$1"; shift
  mkdir -p "$TOLLGATE_CACHE_DIR"
  exec {lockfd}>"$TOLLGATE_CACHE_DIR/.$name.lock"
  flock "$lockfd"
  "$@"
  flock -u "$lockfd"
}
