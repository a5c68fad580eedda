#!/usr/bin/env bash
# npm test: install what is missing, then type check, format check, lint, dependency rules,
# and the vitest suite (unit + integration against real services, which the
# vitest globalSetup starts or attaches to).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
bash infra/ensure-node-modules.sh
bash infra/install.sh
bash infra/install-chromium.sh

step() { printf '\n[test] %s\n' "$*"; }
step "type check (tsc --noEmit)"
npx --no-install tsc -p tsconfig.json --noEmit
step "format (prettier --check)"
npx --no-install prettier --check . || { echo "[test] code is not formatted: run 'npm run format'" >&2; exit 1; }
step "lint (eslint)"
npx --no-install eslint --max-warnings 0 .
step "dependency rules (dependency-cruiser)"
npx --no-install depcruise src --config .dependency-cruiser.cjs
step "vitest (unit + integration)"
mkdir -p .data
rm -f .data/vitest-report.json .data/vitest-storm-report.json .data/vitest-fleet-crash-report.json .data/vitest-fleet-cold-report.json
status=0
if [ "$#" -eq 0 ]; then
  # the fleet's crash loop and its 1,024-shard cold start run alone too, after the rest (below)
  npx --no-install vitest run --exclude test/integration/metering-fleet-crash.test.ts --exclude test/integration/metering-fleet-cold.test.ts \
    --reporter=default --reporter=json --outputFile.json=.data/vitest-report.json || status=$?
else
  npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=.data/vitest-report.json "$@" || status=$?
fi
# The 2,000-deferral storm runs alone, after the rest (beside other files it overloads the one Temporal dev
# server and their timings). Skipped when the run was given arguments (a chosen subset of files).
if [ "$#" -eq 0 ]; then
  step "vitest: the 2,000-deferral storm, alone"
  TOLLGATE_STORM_JOBS="${TOLLGATE_STORM_JOBS:-2000}" npx --no-install vitest run test/integration/account-deferral-storm.test.ts \
    --reporter=default --reporter=json --outputFile.json=.data/vitest-storm-report.json || status=$?
  step "vitest: the metering fleet's crash loop (256 shards, 30 SIGKILLs), alone"
  npx --no-install vitest run test/integration/metering-fleet-crash.test.ts \
    --reporter=default --reporter=json --outputFile.json=.data/vitest-fleet-crash-report.json || status=$?
  step "vitest: a cold worker start with 1,024 shards (64 pumps), alone"
  TOLLGATE_TEST_FLEET_1024=1 npx --no-install vitest run test/integration/metering-fleet-cold.test.ts \
    --reporter=default --reporter=json --outputFile.json=.data/vitest-fleet-cold-report.json || status=$?
fi
# One plain closing line, the same for every runner that reads it.
node -e '
  const fs = require("node:fs");
  let passed = 0, failed = 0, skipped = 0, read = 0; const failures = [];
  for (const file of [".data/vitest-report.json", ".data/vitest-storm-report.json", ".data/vitest-fleet-crash-report.json", ".data/vitest-fleet-cold-report.json"]) {
    if (!fs.existsSync(file)) continue;
    try {
      const r = JSON.parse(fs.readFileSync(file, "utf8"));
      passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests; read += 1;
      for (const suite of r.testResults ?? []) {
        const where = String(suite.name ?? "").replace(process.cwd() + "/", "");
        const bad = (suite.assertionResults ?? []).filter((t) => t.status === "failed");
        if (bad.length === 0 && suite.status === "failed") failures.push(`${where}: ${String(suite.message ?? "").split("\n").slice(0, 6).join(" | ")}`);
        for (const t of bad) failures.push(`${where} > ${t.fullName}: ${String((t.failureMessages ?? [])[0] ?? "").split("\n").slice(0, 6).join(" | ")}`);
      }
    } catch { failed += 1; failures.push(`${file}: unreadable report`); }
  }
  if (read === 0) failed += 1;
  // The failures again at the very end: a CI log is often read from its tail.
  for (const f of failures) console.log(`FAILED ${f.slice(0, 1200)}`);
  console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
'
exit "$status"
