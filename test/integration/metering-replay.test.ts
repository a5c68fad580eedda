/**
 * Determinism: histories of real meter/<shard> runs (test/fixtures/histories,
 * captured with `npm run test:capture-histories`) replay against today's
 * workflow code; a deliberately changed copy of the workflow must fail to.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { describe, expect, it, beforeAll } from 'vitest';
import { workflowsPath } from '../../src/workflows/index.js';
import { testStack } from '../support/stack.js';
import { copyWorkflowsForReplay, quietTemporalRuntime } from '../support/temporal.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

function histories(): { workflowId: string; history: ReturnType<typeof historyFromJSON> }[] {
  // the pump's histories only (other workflows' fixtures live in the same folder)
  return readdirSync(FIXTURES)
    .filter((name) => name.startsWith('meter-shard') && name.endsWith('.json'))
    .sort()
    .map((name) => ({ workflowId: name.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'))) }));
}

async function replayAll(path: string): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const result of Worker.runReplayHistories({ workflowsPath: path, replayName: 'meter-replay' }, histories())) results.push(result);
  return results;
}

beforeAll(() => {
  quietTemporalRuntime();
});

describe('meter/<shard> replay', () => {
  it('replays every captured history against the current workflow code', async () => {
    const results = await replayAll(workflowsPath());
    expect(results.length).toBeGreaterThanOrEqual(2);
    expect(results.map((result) => [result.workflowId, result.error?.message])).toEqual(results.map((result) => [result.workflowId, undefined]));
  });

  it('fails to replay them against a changed workflow (a timer before the first batch): the check can fail', async () => {
    // given a copy of the workflows whose meterShard sleeps before its first batch
    // (the same layout as src/, with the pure model modules workflows may import)
    const dir = copyWorkflowsForReplay(testStack().dataDir, 'replay-negative');
    const file = join(dir, 'meter-shard.ts');
    const source = readFileSync(file, 'utf8');
    const anchor = '  setHandler(meterStateQuery, () => state);\n';
    expect(source).toContain(anchor);
    writeFileSync(file, source.replace(anchor, `${anchor}  await sleep(1);\n`));
    // when
    const results = await replayAll(join(dir, 'index.ts'));
    // then every history with a batch fails as non-deterministic
    expect(results.length).toBeGreaterThanOrEqual(2);
    for (const result of results) expect(result.error?.name, result.workflowId).toBe('DeterminismViolationError');
  });
});
