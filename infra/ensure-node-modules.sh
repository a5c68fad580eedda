#!/usr/bin/env bash
# Installs the npm dependencies from the committed lockfile when node_modules
# is missing or older than the lockfile.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
need_cmd node "Install Node.js 20.3 or newer."
need_cmd npm "Install npm (it ships with Node.js)."
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=3)?0:1)' \
  || die "Node.js $(node -v) is too old: tollgate needs >= 20.3"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm: installing dependencies from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed (see above)"
fi
