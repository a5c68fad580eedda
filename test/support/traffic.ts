/**
 * Requests through the real decider (lua/decide.lua, lua/settle.lua), with the
 * client's own record of what was admitted: the expected ledger per tenant and
 * period, to check exactly-once metering against.
 */
import { randomBytes } from 'node:crypto';
import type { DecideInput, Decider, LimitSpec } from '../../src/decider/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId } from '../../src/shared/index.js';

import { MONTH, monthStartMs } from './time.js';

export { MONTH, monthStartMs } from './time.js';

export const monthQuota = (limit: number): LimitSpec => ({
  id: parseLimitId('month'),
  scope: 'tenant',
  algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent: [] },
  mode: 'hard',
  onDeciderDown: 'open',
});

/** The client's own record: per `tenant|periodStartIso`, admitted cost minus refunds, and the event ids. */
export class AdmittedRecord {
  readonly byPeriod = new Map<string, { amount: number; eventIds: string[] }>();
  admitted = 0;
  denied = 0;
  /** Admitted requests whose first reply was lost: the retry was answered as a replay (charged once). */
  replays = 0;

  add(input: { tenant: string; periodStartMs: number; amount: number; eventId: string }): void {
    const key = `${input.tenant}|${new Date(input.periodStartMs).toISOString()}`;
    const total = this.byPeriod.get(key) ?? { amount: 0, eventIds: [] };
    total.amount += input.amount;
    total.eventIds.push(input.eventId);
    this.byPeriod.set(key, total);
  }
}

export interface TrafficOptions {
  decider: Decider;
  tenants: readonly string[];
  requests: number;
  random: () => number;
  record: AdmittedRecord;
  /** @default 1_000_000 */
  quota?: number;
  subShards?: number;
  /**
   * Called when a decide or settle throws (e.g. Redis is restarting). Returns
   * after a pause; the same call is then retried with the same request id: a
   * retry of an admitted request is a replay, so it is recorded once.
   */
  onError?: (error: unknown) => Promise<void>;
  /** Awaited after each request (e.g. a pause, or a fault injected between requests). */
  between?: (index: number) => Promise<void>;
}

async function retrying<T>(call: () => Promise<T>, onError: TrafficOptions['onError']): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (onError === undefined) throw error;
      await onError(error);
    }
  }
}

/** Decides `requests` requests, settles most (refunds and overruns), and records what was admitted. */
export async function runTraffic(options: TrafficOptions): Promise<void> {
  const { random, record } = options;
  for (let index = 0; index < options.requests; index += 1) {
    const tenant = parseTenantId(options.tenants[index % options.tenants.length] ?? '');
    const request: DecideInput = {
      tenant,
      keyId: parseKeyId('key-1'),
      requestId: parseEventId(`q${index}-${randomBytes(4).toString('hex')}`),
      operation: 'listProducts',
      cost: 1 + Math.floor(random() * 40),
      limits: [monthQuota(options.quota ?? 1_000_000)],
      billingPeriod: MONTH,
      policyVersion: 2,
      ...(options.subShards === undefined ? {} : { subShards: options.subShards }),
    };
    const decision = await retrying(() => options.decider.decide(request), options.onError);
    if (decision.kind !== 'allowed' && decision.kind !== 'warned') {
      record.denied += 1;
      continue;
    }
    record.admitted += 1;
    if (decision.isReplay) record.replays += 1;
    const periodStartMs = monthStartMs(decision.nowMs);
    record.add({ tenant, periodStartMs, amount: request.cost, eventId: request.requestId });
    if (random() < 0.8) {
      const actual = Math.max(0, request.cost + Math.floor(random() * 16) - 11);
      const settled = await retrying(() => options.decider.settle({ ...request, actual, decidedAtMs: decision.nowMs }), options.onError);
      if (settled.status === 'settled' || settled.status === 'replay') {
        record.add({ tenant, periodStartMs, amount: -settled.refund, eventId: `${request.requestId}.settled` });
      }
    }
    await options.between?.(index);
  }
}
