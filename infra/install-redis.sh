#!/usr/bin/env bash
# Installs redis-server and redis-cli from Debian's packages when missing.
source "$(dirname "$0")/lib.sh"

install_redis() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    log "redis: $(redis-server --version | cut -d' ' -f3) already installed"
    return 0
  fi
  need_cmd apt-get "Install Redis >= 7 yourself (redis-server and redis-cli on PATH) or set REDIS_URL to a running Redis."
  log "redis: installing Debian's redis-server"
  as_root apt-get update -qq || die "redis: 'apt-get update' failed; install redis-server by hand or set REDIS_URL"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
    || die "redis: 'apt-get install redis-server' failed; install it by hand or set REDIS_URL"
  # Debian starts a system redis on 6379; tollgate runs its own processes on its own ports.
  if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  command -v redis-server >/dev/null 2>&1 || die "redis: redis-server still not on PATH after install"
}

with_lock redis install_redis
