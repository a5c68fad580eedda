/**
 * `DeferralLane`: a `Deferrer` that bounds what one API instance has in hand of
 * deferrals (issue 14). Each deferral (and each lookup of a retried one) is a
 * DynamoDB write and a Temporal start; a flood of them run all at once makes
 * each slower until they pass Temporal's deadline and are answered 503 while
 * their record (and perhaps their workflow) exists. The lane runs at most
 * `maxInFlight` of them at once and queues at most `maxQueued` more, first in
 * first out; beyond that it refuses at once with `OverloadedError`, before
 * anything is recorded, started or charged (a deferral charges nothing: its
 * job is decided when it runs). Nothing taken is ever dropped: a queued call
 * runs once a slot frees, and its outcome is the inner deferrer's.
 */
import { OverloadedError, type EventId, type TenantId } from '../shared/index.js';
import type { DeferInput, DeferredJob, Deferrer } from './ports.js';

export interface DeferralLaneOptions {
  /** Deferrals (and retried-job lookups) run at once; at least 1. */
  maxInFlight: number;
  /** Deferrals waiting for a slot; beyond them a deferral is refused. 0: none wait. */
  maxQueued: number;
  /** Monotonic ms, for the age of the oldest waiting call. @default performance.now */
  nowMs?: () => number;
}

/** The lane's state, for the metrics. */
export interface DeferralLaneState {
  inFlight: number;
  queued: number;
  /** Age of the oldest waiting call, ms (0 when none waits). */
  oldestQueuedMs: number;
}

interface Waiter {
  sinceMs: number;
  start: () => void;
}

export class DeferralLane implements Deferrer {
  private inFlight = 0;
  private readonly waiting: Waiter[] = [];
  private readonly nowMs: () => number;

  /** @throws RangeError unless `maxInFlight >= 1` and `maxQueued >= 0`, both integers */
  constructor(
    private readonly inner: Deferrer,
    private readonly options: DeferralLaneOptions,
  ) {
    const { maxInFlight, maxQueued } = options;
    if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1 || !Number.isSafeInteger(maxQueued) || maxQueued < 0) {
      throw new RangeError(`a deferral lane needs integers maxInFlight >= 1 and maxQueued >= 0, got ${maxInFlight} and ${maxQueued}`);
    }
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /** @throws OverloadedError `OVERLOADED` when the lane is full (nothing was recorded); else as the inner deferrer */
  defer(input: DeferInput): Promise<DeferredJob> {
    return this.run(() => this.inner.defer(input));
  }

  /**
   * The inner deferrer's lookup (it may restart the job: a Temporal start), through the lane; undefined
   * (no such job) when the inner deferrer cannot look jobs up.
   * @throws OverloadedError `OVERLOADED` when the lane is full; else as the inner deferrer
   */
  async find(input: {
    tenant: TenantId;
    requestId: EventId;
    resubmit?: Omit<DeferInput, 'limitId' | 'retryAfterMs'>;
  }): Promise<DeferredJob | undefined> {
    if (this.inner.find === undefined) return undefined;
    const innerFind = this.inner.find.bind(this.inner);
    return this.run(() => innerFind(input));
  }

  state(): DeferralLaneState {
    const oldest = this.waiting[0];
    return {
      inFlight: this.inFlight,
      queued: this.waiting.length,
      oldestQueuedMs: oldest === undefined ? 0 : this.nowMs() - oldest.sinceMs,
    };
  }

  private async run<T>(call: () => Promise<T>): Promise<T> {
    await this.slot();
    try {
      return await call();
    } finally {
      this.release();
    }
  }

  /** Takes a slot at once, or waits in the queue for one. @throws OverloadedError when both are full */
  private slot(): Promise<void> {
    if (this.inFlight < this.options.maxInFlight) {
      this.inFlight += 1;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.options.maxQueued) {
      return Promise.reject(new OverloadedError('this instance has as many deferrals in hand as it takes; retry later'));
    }
    return new Promise((resolveSlot) => this.waiting.push({ sinceMs: this.nowMs(), start: resolveSlot }));
  }

  /** Hands the freed slot to the oldest waiting call, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.inFlight -= 1;
    else next.start();
  }
}
