/**
 * Redis' share of a call (`timeCall`): time the event loop is busy with other
 * work never makes a call time out; time it waits idle for the reply does; the
 * wall-clock cap holds whatever the loop did.
 */
import { describe, expect, it } from 'vitest';
import { RedisCallTimeout, timeCall } from '../../../src/decider/loop-time.js';

/** Keeps the event loop busy (as a burst of requests would) for `ms`. */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

const after = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));
const never = (): Promise<never> => new Promise<never>(() => undefined);

describe('timeCall', () => {
  it('does not time out a call whose reply waited behind a busy loop past the timeout', async () => {
    // given a reply due after 30 ms and a 20 ms timeout of Redis' share
    const timed = timeCall(() => after(30, 'reply'), { timeoutMs: 20, maxWaitMs: 10_000 });
    // when the loop is busy for 100 ms, so both the timeout and the reply are overdue when it looks
    busyFor(100);
    // then the reply is taken, and the busy time was not counted as Redis'
    const { value, timing } = await timed;
    expect(value).toBe('reply');
    expect(timing.redisMs).toBeLessThan(20);
    expect(timing.wallMs).toBeGreaterThanOrEqual(100);
  });

  it("times out a call once the loop has waited idle for Redis' share", async () => {
    const error = await timeCall(never, { timeoutMs: 20, maxWaitMs: 10_000 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RedisCallTimeout);
    expect(error).toMatchObject({ code: 'REDIS_UNAVAILABLE', isWallClockCap: false });
    expect((error as RedisCallTimeout).timing.redisMs).toBeGreaterThanOrEqual(20);
  });

  it('times out at the wall-clock cap however busy the loop was', async () => {
    const timed = timeCall(never, { timeoutMs: 10_000, maxWaitMs: 50 });
    busyFor(60);
    const error = await timed.catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'REDIS_UNAVAILABLE', isWallClockCap: true });
  });

  it('passes the call through with its timing when there is no deadline, and its errors as they are', async () => {
    await expect(timeCall(() => after(1, 'x'), undefined)).resolves.toMatchObject({ value: 'x' });
    const failure = new Error('boom');
    await expect(timeCall(() => Promise.reject(failure), { timeoutMs: 20, maxWaitMs: 50 })).rejects.toBe(failure);
  });
});
