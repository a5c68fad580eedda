/**
 * Determinism: histories of real pump runs (meterPump, and meterShard of older workers) (test/fixtures/histories,
 * captured with `npm run test:capture-histories`) replay against today's
 * workflow code; a deliberately changed copy of the workflow must fail to.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, beforeAll } from 'vitest';
import { recordedHistories, replayHistories } from '../support/replay.js';
import { testStack } from '../support/stack.js';
import { copyWorkflowsForReplay, quietTemporalRuntime } from '../support/temporal.js';

// the pump's histories only (other workflows' fixtures live in the same folder)
const replayAll = (path?: string) => replayHistories(recordedHistories(/^meter-(shard|pump)/), path);

beforeAll(() => {
  quietTemporalRuntime();
});

describe('meter/<shard> replay', () => {
  it('replays every captured history against the current workflow code', async () => {
    const results = await replayAll();
    expect(results.length).toBeGreaterThanOrEqual(2);
    expect(results.map((result) => [result.workflowId, result.error?.message])).toEqual(
      results.map((result) => [result.workflowId, undefined]),
    );
  });

  it('fails to replay them against a changed workflow (a timer before the first batch): the check can fail', async () => {
    // given a copy of the workflows whose pumps sleep before their first batch
    // (the same layout as src/, with the pure model modules workflows may import)
    const dir = copyWorkflowsForReplay(testStack().dataDir, 'replay-negative');
    for (const [name, anchor] of [
      ['meter-shard.ts', '  setHandler(meterStateQuery, () => state);\n'],
      ['meter-pump.ts', '  setHandler(meterPumpStateQuery, () => state);\n'],
    ] as const) {
      const file = join(dir, name);
      const source = readFileSync(file, 'utf8');
      expect(source).toContain(anchor);
      writeFileSync(file, source.replace(anchor, `${anchor}  await sleep(1);\n`));
    }
    // when
    const results = await replayAll(join(dir, 'index.ts'));
    // then every history with a batch fails as non-deterministic
    expect(results.length).toBeGreaterThanOrEqual(2);
    for (const result of results) expect(result.error?.name, result.workflowId).toBe('DeterminismViolationError');
  });
});
