/**
 * Redis' share of a call's time, as opposed to this process's (STACK gotcha 12).
 *
 * A reply that waits behind other work in the event loop looks, to a timer,
 * exactly like a slow Redis. What tells them apart is the loop's idle time
 * (`performance.eventLoopUtilization().idle`: time spent blocked in the poll
 * phase with nothing to run). While the loop is idle during a call, its reply
 * has not arrived yet (an arrived reply ends the wait at once), so the idle
 * time between sending and hearing back is a lower bound of the time Redis and
 * the network took. Time the process spent busy is not counted against Redis.
 */
import { performance } from 'node:perf_hooks';
import { DependencyError } from '../shared/index.js';

/** Event-loop idle time since the process started, ms. */
export function loopIdleMs(): number {
  return performance.eventLoopUtilization().idle;
}

/** How a call to Redis went, as the breaker needs it. */
export interface CallTiming {
  /** Loop idle time while the call was out: Redis' (and the network's) share, ms. */
  redisMs: number;
  /** Wall-clock time of the call, ms (includes the time the process was busy). */
  wallMs: number;
}

/** A call that Redis did not answer within its share (`timeoutMs` of idle loop time) or the wall-clock cap. */
export class RedisCallTimeout extends DependencyError {
  constructor(
    readonly timing: CallTiming,
    readonly isWallClockCap: boolean,
  ) {
    super('REDIS_UNAVAILABLE', isWallClockCap ? 'Redis did not answer within the wall-clock cap' : 'Redis did not answer in time');
  }
}

export interface DeadlineOptions {
  /** Redis' share: the call fails once the loop has been idle this long without its reply, ms. */
  timeoutMs: number;
  /** Fails the call after this much wall-clock time whatever the loop did, ms. */
  maxWaitMs: number;
}

/**
 * Runs `call` and measures Redis' share of it. With `deadline`, rejects with
 * `RedisCallTimeout` once the loop has been idle `timeoutMs` without the reply
 * (a process too busy to read it is not Redis timing out), or after
 * `maxWaitMs` of wall-clock time. Before a timeout is declared, the loop gets
 * one poll phase (`setImmediate`) to read a reply already in the socket, since
 * timers run before sockets are read. The call itself is not cancelled: its
 * late reply is read and dropped by the client.
 */
export function timeCall<T>(call: () => Promise<T>, deadline: DeadlineOptions | undefined): Promise<{ value: T; timing: CallTiming }> {
  const idleAtStart = loopIdleMs();
  const wallAtStart = performance.now();
  const timing = (): CallTiming => ({ redisMs: loopIdleMs() - idleAtStart, wallMs: performance.now() - wallAtStart });
  const pending = call().then((value) => ({ value, timing: timing() }));
  if (deadline === undefined) return pending;
  return new Promise((resolve, reject) => {
    let isSettled = false;
    let timer: NodeJS.Timeout | undefined;
    const expired = (): { isWallClockCap: boolean } | undefined => {
      const now = timing();
      if (now.wallMs >= deadline.maxWaitMs) return { isWallClockCap: true };
      return now.redisMs >= deadline.timeoutMs ? { isWallClockCap: false } : undefined;
    };
    const check = (): void => {
      if (isSettled) return;
      if (expired() === undefined) {
        const now = timing();
        const leftMs = Math.min(deadline.timeoutMs - now.redisMs, deadline.maxWaitMs - now.wallMs);
        timer = setTimeout(check, Math.max(1, Math.ceil(leftMs)));
        return;
      }
      setImmediate(() => {
        const late = expired();
        if (isSettled || late === undefined) return;
        isSettled = true;
        reject(new RedisCallTimeout(timing(), late.isWallClockCap));
      });
    };
    timer = setTimeout(check, Math.min(deadline.timeoutMs, deadline.maxWaitMs));
    pending.then(
      (result) => {
        clearTimeout(timer);
        if (isSettled) return;
        isSettled = true;
        resolve(result);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (isSettled) return;
        isSettled = true;
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
