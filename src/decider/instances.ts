/**
 * How many API instances share the limits, for the degraded-mode backstop
 * (`resilient.ts`: each instance's backstop gets limit / instances). While
 * Redis answers, each instance sends a heartbeat every `heartbeatMs` into its
 * deployment's sorted set (`lua/instances.lua`, Redis' clock) and reads back
 * how many instances beat in the last `3 · heartbeatMs`. While Redis does not
 * answer, the last count read stands: an outage changes nothing it divides by.
 * The count is kept in `statePath` too, so an instance restarted during an
 * outage still knows it; an instance that never read one uses `floor`, which
 * is also the least it ever divides by.
 *
 * Bound (stated in the README): with N the count every instance last read and
 * N' instances alive during an outage, the backstops admit at most
 * N' · floor(L / N) ≤ L · N' / N units per limit window (plus, for a token
 * bucket, its refill at rate · N' / N); an instance that never read a count
 * admits up to floor(L / floor).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from '../shared/index.js';
import { instancesKey } from './keys.js';
import type { DeciderRedis } from './redis.js';

export interface InstanceRegistryOptions {
  /** The deployment's name: instances of one deployment count each other (lower-case, ≤ 64 characters). */
  deployment: string;
  /** How often this instance beats and reads the count, ms; an instance silent for 3 beats is not counted. */
  heartbeatMs: number;
  /** The least count it divides by, and the count of an instance that never read one. @default 1 */
  floor?: number;
  /** Where the last count read is kept across restarts (e.g. next to the spool). */
  statePath?: string;
  logger: Logger;
  /** @default `<hostname>-<pid>-<random>` */
  instanceId?: string;
}

export class InstanceRegistry {
  readonly instanceId: string;
  private readonly key: string;
  private readonly floor: number;
  private known: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;

  /** @throws ValidationError when the deployment name is invalid */
  constructor(
    private readonly redis: DeciderRedis,
    private readonly options: InstanceRegistryOptions,
  ) {
    this.key = instancesKey(options.deployment);
    this.floor = Math.max(1, options.floor ?? 1);
    this.instanceId = options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.known = this.readState();
  }

  /** The divisor now: the last count read (from Redis, or kept from before a restart), never below the floor. */
  count(): number {
    return Math.max(this.floor, this.known ?? this.floor);
  }

  /** The last count read, undefined when none was ever read. */
  get lastKnown(): number | undefined {
    return this.known;
  }

  /** Beats once (a failure is only logged) and then every `heartbeatMs`; the timer does not keep the process alive. */
  async start(): Promise<void> {
    await this.beat();
    this.timer ??= setInterval(() => void this.beat(), this.options.heartbeatMs);
    this.timer.unref();
  }

  /** Stops beating and leaves the set at once (best effort: otherwise the entry ages out in 3 beats). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.zrem(this.key, this.instanceId).catch(() => undefined);
  }

  /** One heartbeat and count read; while Redis does not answer, the last count stands. */
  beat(): Promise<void> {
    this.beating ??= this.redis
      .tgHeartbeat(this.key, this.instanceId, 3 * this.options.heartbeatMs)
      .then((reply: unknown) => {
        const live = Array.isArray(reply) ? Number(reply[0]) : NaN;
        if (!Number.isSafeInteger(live) || live < 1) return;
        if (live !== this.known) {
          this.options.logger.info({ instances: live, previous: this.known ?? null }, 'live API instances changed');
          this.writeState(live);
        }
        this.known = live;
      })
      .catch(() => undefined)
      .finally(() => {
        this.beating = undefined;
      });
    return this.beating;
  }

  private readState(): number | undefined {
    if (this.options.statePath === undefined) return undefined;
    try {
      const value = Number(readFileSync(this.options.statePath, 'utf8').trim());
      return Number.isSafeInteger(value) && value >= 1 ? value : undefined;
    } catch {
      return undefined;
    }
  }

  private writeState(live: number): void {
    if (this.options.statePath === undefined) return;
    try {
      writeFileSync(this.options.statePath, `${live}\n`);
    } catch (error) {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'instance count not kept on disk');
    }
  }
}
