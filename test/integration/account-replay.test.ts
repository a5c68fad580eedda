/**
 * Determinism of account/<tenant>: histories of real runs
 * (test/fixtures/histories/account-*.json, captured by account-period.test.ts
 * and account-continue-as-new.test.ts with TOLLGATE_CAPTURE_HISTORIES=1) replay
 * against today's workflow code; a changed copy of the workflow fails to.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordedHistories, replayHistories } from '../support/replay.js';
import { testStack } from '../support/stack.js';
import { copyWorkflowsForReplay, quietTemporalRuntime } from '../support/temporal.js';

const replayAll = (path?: string) => replayHistories(recordedHistories(/^account-/), path);

beforeAll(() => {
  quietTemporalRuntime();
});

describe('account/<tenant> replay', () => {
  it('replays every captured history against the current workflow code', async () => {
    const results = await replayAll();
    expect(results.length).toBeGreaterThanOrEqual(2);
    expect(results.map((result) => [result.workflowId, result.error?.message])).toEqual(
      results.map((result) => [result.workflowId, undefined]),
    );
  });

  it('fails to replay them against a changed workflow (an extra activity before the first one): the check can fail', async () => {
    // given a copy of the workflows whose accountWorkflow reads the settings twice at start
    const dir = copyWorkflowsForReplay(testStack().dataDir, 'account-replay-negative');
    const file = join(dir, 'account.ts');
    const source = readFileSync(file, 'utf8');
    const anchor = '  let recheckAtMs = 0;\n';
    expect(source).toContain(anchor);
    writeFileSync(file, source.replace(anchor, `${anchor}  await activities.account.loadAccountPeriod({ tenant, atMs: 0 });\n`));
    // when
    const results = await replayAll(join(dir, 'index.ts'));
    // then every history fails as non-deterministic
    expect(results.length).toBeGreaterThanOrEqual(2);
    for (const result of results) expect(result.error?.name, result.workflowId).toBe('DeterminismViolationError');
  });
});
