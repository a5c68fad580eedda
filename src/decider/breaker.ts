/**
 * Circuit breaker in front of Redis. It opens on evidence that Redis (or the
 * network to it) is failing, never because this process is busy: after
 * `failureThreshold` consecutive failure events (a call that timed out on
 * Redis' share of time, Redis unreachable, or one lost connection however many
 * calls were in flight on it) or `slowThreshold` consecutive calls whose Redis
 * share (idle event-loop time while waiting, `loop-time.ts`) is over the
 * latency budget. The caller reports once per call, never once per request of
 * a batch. After a cooldown with U(0, 0.2·cooldown) jitter (so a fleet does not
 * probe in lockstep) it lets exactly one probe through; the probe's outcome
 * closes or re-opens it. While open, decisions degrade at once instead of
 * waiting for a timeout.
 */
import type { Clock } from '../shared/index.js';
import type { CallOutcome } from './decider.js';
import type { CallTiming } from './loop-time.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** @default 5 */
  failureThreshold?: number;
  /** A call whose Redis share is over this counts toward opening, in ms. @default 25 */
  latencyBudgetMs?: number;
  /** @default 5 */
  slowThreshold?: number;
  /** @default 1000 */
  cooldownMs?: number;
}

const DEFAULTS: Required<BreakerOptions> = { failureThreshold: 5, latencyBudgetMs: 25, slowThreshold: 5, cooldownMs: 1_000 };

export class CircuitBreaker {
  private readonly options: Required<BreakerOptions>;
  private state: BreakerState = 'closed';
  private failures = 0;
  private slow = 0;
  private reopenAtMs = 0;
  private isProbing = false;
  private readonly listeners: ((state: BreakerState) => void)[] = [];

  constructor(
    private readonly clock: Clock,
    options: BreakerOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  get current(): BreakerState {
    return this.state;
  }

  /**
   * One script call's outcome. A call that reached the wall-clock cap while Redis had the smaller share of it says
   * this process was busy, not that Redis is sick: its own decisions degrade (nothing waits past
   * the cap) but it is no failure event, so a burst on a busy process cannot open the breaker.
   */
  heard(outcome: CallOutcome): void {
    if (outcome.kind === 'answered') this.success(outcome.timing.redisMs);
    else if (outcome.cause === 'wall-clock-cap' && this.wasProcessBusy(outcome.timing)) this.abandon();
    else this.failure();
  }

  /**
   * Whether a call that reached the wall-clock cap waited on this process rather than on Redis: Redis' share (idle
   * loop time) under half the wait. With a share timeout (DECIDER_TIMEOUT_MS) a share past it would have failed the
   * call first, so at the cap Redis' share is always the smaller part.
   */
  wasProcessBusy(timing: CallTiming): boolean {
    return timing.redisMs * 2 < timing.wallMs;
  }

  onChange(listener: (state: BreakerState) => void): void {
    this.listeners.push(listener);
  }

  /** Whether a call may go to Redis now. In half-open, only one probe at a time. */
  allow(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open' && this.clock.nowMs() >= this.reopenAtMs) this.set('half-open');
    if (this.state === 'half-open' && !this.isProbing) {
      this.isProbing = true;
      return true;
    }
    return false;
  }

  /** Redis answered a call; `redisMs`: Redis' share of its time (not the time this process was busy). */
  success(redisMs: number): void {
    if (this.state === 'half-open') {
      this.isProbing = false;
      this.failures = 0;
      this.slow = 0;
      this.set('closed');
      return;
    }
    this.failures = 0;
    this.slow = redisMs > this.options.latencyBudgetMs ? this.slow + 1 : 0;
    if (this.slow >= this.options.slowThreshold) this.trip();
  }

  /** A call ended without telling anything about Redis (e.g. bad input): a probe slot is freed, nothing else changes. */
  abandon(): void {
    if (this.state === 'half-open') this.isProbing = false;
  }

  /** One failure event: a timed-out call, Redis unreachable, or one lost connection. */
  failure(): void {
    if (this.state === 'half-open') {
      this.isProbing = false;
      this.trip();
      return;
    }
    this.failures += 1;
    if (this.failures >= this.options.failureThreshold && this.state === 'closed') this.trip();
  }

  private trip(): void {
    const jitter = this.random() * 0.2 * this.options.cooldownMs;
    this.reopenAtMs = this.clock.nowMs() + this.options.cooldownMs + jitter;
    this.failures = 0;
    this.slow = 0;
    this.set('open');
  }

  private set(state: BreakerState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }
}
