import { describe, expect, it } from 'vitest';
import { DeferralLane, deferOperation, type DeferInput, type DeferredJob, type Deferrer } from '../../../src/jobs/index.js';
import { parseEventId, parseKeyId, parseLimitId, parsePlanId, parseTenantId } from '../../../src/shared/index.js';

const input = (n: number): DeferInput => ({
  tenant: parseTenantId('acme'),
  keyId: parseKeyId('k-1'),
  planId: parsePlanId('pro'),
  requestId: parseEventId(`r-${n}`),
  operationName: 'Report',
  query: 'query Report { report { total } }',
  variables: {},
  cost: 5,
  limitId: parseLimitId('heavy'),
  retryAfterMs: 1_000,
});

/** A deferrer whose calls each wait until the test finishes them, counting the calls it received. */
class HeldDeferrer implements Deferrer {
  readonly pending: { requestId: string; finish: () => void }[] = [];
  defer(deferInput: DeferInput): Promise<DeferredJob> {
    return new Promise((resolveJob) =>
      this.pending.push({
        requestId: deferInput.requestId,
        finish: () => resolveJob({ id: `j-${deferInput.requestId}`, status: 'queued', etaMs: 1_000 }),
      }),
    );
  }
  find(): Promise<DeferredJob | undefined> {
    return new Promise((resolveJob) => this.pending.push({ requestId: 'find', finish: () => resolveJob(undefined) }));
  }
}

const settle = () => new Promise((resolveTick) => setImmediate(resolveTick));

describe('DeferralLane', () => {
  it('runs at most maxInFlight calls, queues maxQueued in order, and refuses the rest without calling the deferrer', async () => {
    // given a lane of 2 in flight and 3 queued over a deferrer that holds every call
    const inner = new HeldDeferrer();
    let nowMs = 0;
    const lane = new DeferralLane(inner, { maxInFlight: 2, maxQueued: 3, nowMs: () => nowMs });
    // when 7 deferrals arrive at once
    const outcomes = Array.from({ length: 7 }, async (_, n) =>
      deferOperation({ deferrer: lane, submission: input(n), limitId: parseLimitId('heavy'), retryAfterMs: 1_000 }),
    );
    await settle();
    nowMs = 250;
    // then 2 reach the deferrer, 3 wait (the oldest for 250 ms), 2 are refused as overloaded
    expect(inner.pending.map((call) => call.requestId)).toEqual(['r-0', 'r-1']);
    expect(lane.state()).toEqual({ inFlight: 2, queued: 3, oldestQueuedMs: 250 });
    expect((await outcomes[5])?.kind).toBe('overloaded');
    expect((await outcomes[6])?.kind).toBe('overloaded');
    // and as calls finish, the waiting ones start first come first served, and every taken one is deferred
    for (let finished = 0; finished < 5; finished += 1) {
      inner.pending[finished]?.finish();
      await settle();
    }
    expect(inner.pending.map((call) => call.requestId)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4']);
    const kinds = await Promise.all(outcomes.slice(0, 5).map(async (outcome) => (await outcome).kind));
    expect(kinds).toEqual(['deferred', 'deferred', 'deferred', 'deferred', 'deferred']);
    expect(lane.state()).toEqual({ inFlight: 0, queued: 0, oldestQueuedMs: 0 });
  });

  it('frees its slot when the deferrer fails, and puts lookups of retried jobs through the same lane', async () => {
    // given a lane of 1 over a deferrer that fails
    const failing: Deferrer = { defer: () => Promise.reject(new Error('temporal down')) };
    const lane = new DeferralLane(failing, { maxInFlight: 1, maxQueued: 0 });
    // when a deferral fails, the next one still gets the slot (and fails the same way, not as overloaded)
    await expect(lane.defer(input(1))).rejects.toThrow('temporal down');
    await expect(lane.defer(input(2))).rejects.toThrow('temporal down');
    // and a lookup holds a slot like a deferral does
    const held = new HeldDeferrer();
    const lookups = new DeferralLane(held, { maxInFlight: 1, maxQueued: 0 });
    const first = lookups.find({ tenant: parseTenantId('acme'), requestId: parseEventId('r-1') });
    await expect(lookups.defer(input(2))).rejects.toMatchObject({ code: 'OVERLOADED' });
    held.pending[0]?.finish();
    expect(await first).toBeUndefined();
    // and a lane over a deferrer that cannot look jobs up finds none
    expect(await lane.find({ tenant: parseTenantId('acme'), requestId: parseEventId('r-1') })).toBeUndefined();
  });

  it('refuses bounds that cannot work', () => {
    expect(() => new DeferralLane(new HeldDeferrer(), { maxInFlight: 0, maxQueued: 1 })).toThrow(RangeError);
    expect(() => new DeferralLane(new HeldDeferrer(), { maxInFlight: 1, maxQueued: -1 })).toThrow(RangeError);
  });
});
