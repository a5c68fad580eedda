/**
 * Temporal replay (DESIGN §7: workflows are tested by replay): histories of
 * real runs, recorded under test/fixtures/histories or fetched from this run,
 * replayed against a workflows bundle with `Worker.runReplayHistories`.
 * `TOLLGATE_CAPTURE_HISTORIES=1` (npm run test:capture-histories) rewrites the
 * recorded fixtures from the run.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { temporal } from '@temporalio/proto';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { workflowsPath as currentWorkflowsPath } from '../../src/workflows/index.js';

type History = temporal.api.history.v1.IHistory;

/** The folder of recorded histories. */
export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

/** Whether this run records its histories as the new fixtures (`TOLLGATE_CAPTURE_HISTORIES=1`). */
export const isCapturingHistories = process.env['TOLLGATE_CAPTURE_HISTORIES'] === '1';

export interface HistoryToReplay {
  workflowId: string;
  history: History;
}

/** The recorded histories whose file name matches `pattern`, by name; the workflow id is the file name without `.json`. */
export function recordedHistories(pattern: RegExp): HistoryToReplay[] {
  return readdirSync(HISTORIES_DIR)
    .filter((name) => name.endsWith('.json') && pattern.test(name))
    .sort()
    .map((name) => ({
      workflowId: name.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR, name), 'utf8'))),
    }));
}

/** Writes `history` as the fixture `fixture` (a file name in HISTORIES_DIR) when the run captures histories. @returns whether it wrote */
export function captureHistory(fixture: string, history: History): boolean {
  if (!isCapturingHistories) return false;
  writeFileSync(join(HISTORIES_DIR, fixture), `${historyToJSON(history)}\n`);
  return true;
}

/** Replays every history, in order, against the workflows at `workflowsPath` (today's code unless given). */
export async function replayHistories(
  histories: readonly HistoryToReplay[],
  workflowsPath = currentWorkflowsPath(),
): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const result of Worker.runReplayHistories({ workflowsPath, replayName: 'tollgate-replay' }, histories)) results.push(result);
  return results;
}

/** Replays like `replayHistories` and lists the failures as `<workflow id>: <error>`: empty when every history replays. */
export async function replayFailures(histories: readonly HistoryToReplay[], workflowsPath?: string): Promise<string[]> {
  const results = await replayHistories(histories, workflowsPath);
  return results.filter((result) => result.error !== undefined).map((result) => `${result.workflowId}: ${String(result.error)}`);
}
