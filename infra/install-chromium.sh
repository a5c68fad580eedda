#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser tests (npm test) when missing.
# npm start does not need it. CHROMIUM_PATH points the tests at another Chromium.
source "$(dirname "$0")/lib.sh"

install_chromium() {
  local bin="${CHROMIUM_PATH:-/usr/bin/chromium}"
  if [ -x "$bin" ]; then
    log "chromium: $bin already installed"
    return 0
  fi
  need_cmd apt-get "Install Chromium yourself and set CHROMIUM_PATH to its binary."
  log "chromium: installing Debian's chromium (for the dashboard's browser tests)"
  as_root apt-get update -qq || die "chromium: 'apt-get update' failed; install chromium by hand or set CHROMIUM_PATH"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || die "chromium: 'apt-get install chromium' failed; install it by hand or set CHROMIUM_PATH"
  [ -x "$bin" ] || die "chromium: $bin still missing after install"
}

with_lock chromium install_chromium
