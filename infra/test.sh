#!/usr/bin/env bash
# npm test: install what is missing, then type check, lint, dependency rules,
# and the vitest suite (unit + integration against real services, which the
# vitest globalSetup starts or attaches to).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
bash infra/ensure-node-modules.sh
bash infra/install.sh

step() { printf '\n[test] %s\n' "$*"; }
step "type check (tsc --noEmit)"
npx --no-install tsc -p tsconfig.json --noEmit
step "lint (eslint)"
npx --no-install eslint --max-warnings 0 .
step "dependency rules (dependency-cruiser)"
npx --no-install depcruise src --config .dependency-cruiser.cjs
step "vitest (unit + integration)"
mkdir -p .data
status=0
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=.data/vitest-report.json "$@" || status=$?
# One plain closing line, the same for every runner that reads it.
node -e '
  const fs = require("node:fs");
  try {
    const r = JSON.parse(fs.readFileSync(".data/vitest-report.json", "utf8"));
    console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  } catch { console.log("vitest: 0 passed, 1 failed"); }
'
exit "$status"
