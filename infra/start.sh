#!/usr/bin/env bash
# npm start: install what is missing, then run the supervisor (infra/start.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
bash infra/ensure-node-modules.sh
bash infra/install.sh
exec node --import tsx infra/start.ts
