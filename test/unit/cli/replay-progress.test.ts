import { describe, expect, it } from 'vitest';
import { PROGRESS_EVERY, replayUsage, type RecordedEntry } from '../../../src/billing/replay.js';
import { replayProgress } from '../../../src/cli/replay-command.js';
import { progressBar } from '../../../src/cli/progress.js';
import type { CliIo } from '../../../src/cli/command.js';
import type { LimitSpec } from '../../../src/decider/index.js';
import { parseLimitId, parseTenantId } from '../../../src/shared/index.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;

function terminal(): { io: CliIo; lines: string[] } {
  const lines: string[] = [];
  const io: CliIo = {
    out: () => undefined,
    err: () => undefined,
    env: {},
    runApiProcess: () => Promise.resolve(),
    progress: (text) => lines.push(text),
  };
  return { io, lines };
}

describe('tollgate replay progress', () => {
  it('draws the ledger read, then the entries replayed, then clears the line', () => {
    const { io, lines } = terminal();
    const progress = replayProgress(io, false);
    progress.reading(0, 12);
    progress.reading(6, 12);
    progress.replaying(10_000, 40_000);
    progress.clear();
    expect(lines).toEqual([
      progressBar(0, 12, 'billing periods read'),
      progressBar(6, 12, 'billing periods read'),
      `[${'#'.repeat(7)}${'.'.repeat(23)}] 10000/40000 entries replayed`,
      '',
    ]);
  });

  it('draws nothing with --json, nor without a terminal', () => {
    const { io, lines } = terminal();
    const json = replayProgress(io, true);
    json.reading(1, 2);
    json.replaying(1, 2);
    json.clear();
    const { progress: _drawn, ...pipe } = io;
    const piped = replayProgress(pipe, false);
    piped.reading(1, 2);
    piped.clear();
    expect(lines).toEqual([]);
  });

  it('reports the entries replayed as it goes, and all of them at the end', () => {
    const count = 2 * PROGRESS_EVERY + 5;
    const entries: RecordedEntry[] = Array.from({ length: count }, (_, index) => ({
      eventId: `e-${index}`,
      kind: 'usage.reserved.v1',
      amount: 1,
      operation: 'Q',
      atMs: Date.UTC(2026, 0, 1) + index,
      keyId: 'k1',
    }));
    const limits: LimitSpec[] = [
      {
        id: parseLimitId('monthly'),
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 1_000_000, period: MONTH, thresholdsPercent: [] },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ];
    const seen: number[] = [];
    const result = replayUsage({
      tenant: parseTenantId('t1'),
      limits,
      billingPeriod: MONTH,
      entries,
      shouldKeepRequests: false,
      onProgress: (done) => seen.push(done),
    });
    expect(seen).toEqual([PROGRESS_EVERY, 2 * PROGRESS_EVERY, count]);
    expect(result.totals.requests).toBe(count);
  });
});
