/**
 * The worker's fleet health: when the pump fleet counts as stalled
 * (`tollgate_meter_fleet_stalled`), and the gauges a scrape reads.
 */
import { describe, expect, it } from 'vitest';
import { WorkerMetrics, isFleetStalled, serveWorkerMetrics, type Readiness } from '../../../src/workflows/index.js';

const STALL = { stallAfterSeconds: 60 };

function gauge(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`${name} not in:\n${text}`);
  return Number(match[1]);
}

describe('isFleetStalled', () => {
  it('is stalled when entries waited past the threshold and no batch handled one for as long', () => {
    expect(isFleetStalled({ ...STALL, unacknowledged: 5, oldestUnacknowledgedAgeSeconds: 60, secondsSinceProgress: 60 })).toBe(true);
  });

  it('is not stalled when idle (nothing waits), however long since the last batch with entries', () => {
    expect(isFleetStalled({ ...STALL, unacknowledged: 0, oldestUnacknowledgedAgeSeconds: 0, secondsSinceProgress: 86_400 })).toBe(false);
  });

  it('is not stalled when batches progress, even behind an old backlog', () => {
    expect(isFleetStalled({ ...STALL, unacknowledged: 9_000, oldestUnacknowledgedAgeSeconds: 600, secondsSinceProgress: 2 })).toBe(false);
  });

  it('is not stalled while the waiting entries are younger than the threshold (traffic just resumed)', () => {
    expect(isFleetStalled({ ...STALL, unacknowledged: 3, oldestUnacknowledgedAgeSeconds: 59, secondsSinceProgress: 3_600 })).toBe(false);
  });
});

describe('WorkerMetrics fleet gauges', () => {
  it('reads the lag once per scrape and reports a stall until a batch handles entries', async () => {
    // given a worker whose fleet has 7 entries waiting for 2 minutes and a threshold of 60 s
    let nowMs = 1_000_000;
    const metrics = new WorkerMetrics({ nowMs: () => nowMs });
    let reads = 0;
    metrics.watchFleet({
      readLag: () => {
        reads += 1;
        return Promise.resolve({ unacknowledged: 7, oldestUnacknowledgedAgeSeconds: 120, deadLetters: 0, streams: 4 });
      },
      stallAfterMs: 60_000,
    });
    // when scraped a minute after the worker started (no batch yet)
    nowMs += 60_000;
    const stalled = await metrics.registry.metrics();
    // then
    expect(gauge(stalled, 'tollgate_meter_unacknowledged_entries')).toBe(7);
    expect(gauge(stalled, 'tollgate_meter_fleet_stalled')).toBe(1);
    expect(gauge(stalled, 'tollgate_meter_seconds_since_progress')).toBe(60);
    expect(reads).toBe(1);
    // when, 2 s later (the lag read again: still 7 waiting), a batch handles entries
    nowMs += 2_000;
    metrics.recordBatch({
      claimCursor: '0-0',
      read: 3,
      reclaimed: 0,
      posted: 3,
      duplicates: 0,
      deadLettered: 0,
      acked: 3,
      trimmed: 0,
      lastEntryId: '1-0',
      warnings: 0,
    });
    // then the fleet is no longer stalled
    const progressing = await metrics.registry.metrics();
    expect(gauge(progressing, 'tollgate_meter_fleet_stalled')).toBe(0);
    expect(gauge(progressing, 'tollgate_meter_seconds_since_progress')).toBe(0);
    expect(reads).toBe(2);
  });
});

describe('WorkerMetrics.fleetHealth and /ready', () => {
  it('says stalled with the figures behind it, and /ready answers 503 with the reason, then 200 once a batch progressed', async () => {
    // given a fleet with 7 entries waiting 2 minutes, a minute after the worker started, threshold 60 s
    let nowMs = 1_000_000;
    const metrics = new WorkerMetrics({ nowMs: () => nowMs });
    metrics.watchFleet({
      readLag: () => Promise.resolve({ unacknowledged: 7, oldestUnacknowledgedAgeSeconds: 120, deadLetters: 0, streams: 4 }),
      stallAfterMs: 60_000,
    });
    nowMs += 60_000;
    const readiness = async (): Promise<Readiness> => {
      const { isStalled, ...details } = await metrics.fleetHealth();
      return isStalled ? { isReady: false, reason: 'METER_FLEET_STALLED', details } : { isReady: true };
    };
    const server = await serveWorkerMetrics({ registry: metrics.registry, host: '127.0.0.1', port: 0, readiness });
    try {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      // when /ready is asked
      const stalled = await fetch(`http://127.0.0.1:${address.port}/ready`);
      // then
      expect(stalled.status).toBe(503);
      expect(await stalled.json()).toEqual({
        ready: false,
        reason: 'METER_FLEET_STALLED',
        unacknowledged: 7,
        oldestUnacknowledgedAgeSeconds: 120,
        secondsSinceProgress: 60,
      });
      // when a batch handles entries
      metrics.recordBatch({
        claimCursor: '0-0',
        read: 1,
        reclaimed: 0,
        posted: 1,
        duplicates: 0,
        deadLettered: 0,
        acked: 1,
        trimmed: 0,
        lastEntryId: '1-0',
        warnings: 0,
      });
      const ready = await fetch(`http://127.0.0.1:${address.port}/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ready: true });
    } finally {
      server.close();
    }
  });

  it('is not stalled when no fleet is watched or its lag cannot be read', async () => {
    const metrics = new WorkerMetrics({ nowMs: () => 0 });
    expect(await metrics.fleetHealth()).toEqual({ isStalled: false });
    metrics.watchFleet({ readLag: () => Promise.reject(new Error('redis down')), stallAfterMs: 1_000 });
    expect(await metrics.fleetHealth()).toEqual({ isStalled: false });
  });
});
