/**
 * Usage events in the decider's exact stream format (DESIGN §6, lua/decide.lua,
 * lua/settle.lua, the spool replay), for tests that feed the pump directly.
 */
import type { Redis } from 'ioredis';

export type TestEventType = 'usage.reserved.v1' | 'usage.settled.v1' | 'usage.degraded.v1';

export interface TestEvent {
  /** Flat stream fields, in the producer's order. */
  fields: string[];
  tenant: string;
  /** Billing period start, ms. */
  bp: number;
  /** What the ledger must move by. */
  amount: number;
  eventId: string;
}

const BASE_TIME_MS = 1_795_000_000_000;

export function reservedEvent(input: { requestId: string; tenant: string; bp: number; cost: number; op?: string }): TestEvent {
  return {
    fields: [
      'id',
      input.requestId,
      'type',
      'usage.reserved.v1',
      'tenant',
      input.tenant,
      'key',
      'key-1',
      'op',
      input.op ?? 'listProducts',
      'cost',
      String(input.cost),
      'pv',
      '3',
      'bp',
      String(input.bp),
      'time_ms',
      String(BASE_TIME_MS),
    ],
    tenant: input.tenant,
    bp: input.bp,
    amount: input.cost,
    eventId: input.requestId,
  };
}

export function settledEvent(input: { requestId: string; tenant: string; bp: number; requested: number; actual: number }): TestEvent {
  const refund = input.requested - input.actual;
  return {
    fields: [
      'id',
      `${input.requestId}.settled`,
      'type',
      'usage.settled.v1',
      'tenant',
      input.tenant,
      'key',
      'key-1',
      'op',
      'listProducts',
      'requested',
      String(input.requested),
      'actual',
      String(input.actual),
      'pv',
      '3',
      'refund',
      String(refund),
      'bp',
      String(input.bp),
      'time_ms',
      String(BASE_TIME_MS + 5),
    ],
    tenant: input.tenant,
    bp: input.bp,
    amount: -refund,
    eventId: `${input.requestId}.settled`,
  };
}

export function degradedEvent(input: { requestId: string; tenant: string; bp: number; cost: number }): TestEvent {
  return {
    fields: [
      'tenant',
      input.tenant,
      'key',
      'key-1',
      'op',
      'getProduct',
      'pv',
      '3',
      'bp',
      String(input.bp),
      'type',
      'usage.degraded.v1',
      'cost',
      String(input.cost),
      'id',
      input.requestId,
      'time_ms',
      String(BASE_TIME_MS + 9),
    ],
    tenant: input.tenant,
    bp: input.bp,
    amount: input.cost,
    eventId: input.requestId,
  };
}

/** A deterministic PRNG (mulberry32) so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * A mix of requests for the given tenants and periods: each request reserves,
 * most settle (some refund, some overrun), a few are degraded admissions.
 */
export function generateEvents(input: {
  tenants: string[];
  periods: number[];
  requests: number;
  random: () => number;
  prefix: string;
}): TestEvent[] {
  const events: TestEvent[] = [];
  const pick = <T>(items: T[]): T => items[Math.floor(input.random() * items.length)] as T;
  for (let index = 0; index < input.requests; index += 1) {
    const tenant = pick(input.tenants);
    const bp = pick(input.periods);
    const requestId = `${input.prefix}-r${index}`;
    const roll = input.random();
    const cost = 1 + Math.floor(input.random() * 50);
    if (roll < 0.1) {
      events.push(degradedEvent({ requestId, tenant, bp, cost }));
      continue;
    }
    events.push(reservedEvent({ requestId, tenant, bp, cost }));
    if (roll < 0.85) {
      const actual = Math.max(0, cost + Math.floor(input.random() * 20) - 14);
      events.push(settledEvent({ requestId, tenant, bp, requested: cost, actual }));
    }
  }
  return events;
}

/** XADDs the events to a stream in order, pipelined. */
export async function appendEvents(redis: Redis, stream: string, events: readonly { fields: string[] }[]): Promise<void> {
  for (let start = 0; start < events.length; start += 500) {
    const pipeline = redis.pipeline();
    for (const event of events.slice(start, start + 500)) pipeline.xadd(stream, '*', ...event.fields);
    const replies = await pipeline.exec();
    const failed = replies?.find(([error]) => error !== null);
    if (failed?.[0]) throw failed[0];
  }
}

/** Expected balance per `tenant|periodStartIso`: sum of amounts and count of distinct events. */
export function expectedBalances(events: readonly TestEvent[]): Map<string, { amount: number; entries: number }> {
  const totals = new Map<string, { amount: number; entries: number }>();
  for (const event of events) {
    const key = `${event.tenant}|${new Date(event.bp).toISOString()}`;
    const total = totals.get(key) ?? { amount: 0, entries: 0 };
    totals.set(key, { amount: total.amount + event.amount, entries: total.entries + 1 });
  }
  return totals;
}
