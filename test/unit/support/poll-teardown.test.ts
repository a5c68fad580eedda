/**
 * The support helpers every integration file leans on: `waitFor` returns what
 * the probe found or fails naming what never came, and `closeAll` closes every
 * client even when one fails.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../support/poll.js';
import { closeAll } from '../../support/teardown.js';

describe('waitFor', () => {
  it('returns the first value that is not undefined, null or false, probing until then', async () => {
    // given a probe that finds nothing twice, then null, then false, then 0
    const answers = [undefined, undefined, null, false, 0];
    let probes = 0;
    // when waited for
    const found = await waitFor('a count', () => answers[probes++], { timeoutMs: 2_000, intervalMs: 1 });
    // then 0 counts as found (only undefined, null and false mean not yet)
    expect(found).toBe(0);
    expect(probes).toBe(5);
  });

  it('fails naming what it waited for, after probing at least once', async () => {
    let probes = 0;
    const failure = await waitFor(
      'the replica to sync',
      () => {
        probes += 1;
        return false;
      },
      { timeoutMs: 0 },
    ).catch((error: unknown) => error);
    expect(failure).toEqual(new Error('timed out after 0 ms waiting for the replica to sync'));
    expect(probes).toBe(1);
  });

  it("passes a probe's own error through at once", async () => {
    let probes = 0;
    const failure = waitFor('a child that stays up', () => {
      probes += 1;
      throw new Error('the child exited with 1');
    });
    await expect(failure).rejects.toThrow('the child exited with 1');
    expect(probes).toBe(1);
  });
});

describe('closeAll', () => {
  it('closes each kind of client in order, skips the ones never opened, and goes on past a failure', async () => {
    // given clients of every kind, one that fails to close, and one never opened
    const closed: string[] = [];
    const redis = { disconnect: () => closed.push('redis') };
    const dynamo = { destroy: () => closed.push('dynamo') };
    const broken = {
      close: () => {
        closed.push('broken');
        return Promise.reject(new Error('socket hang up'));
      },
    };
    const env = { teardown: () => Promise.resolve(void closed.push('env')) };
    // when all are closed
    const failure = await closeAll(redis, undefined, broken, dynamo, env, () => closed.push('server')).catch((error: unknown) => error);
    // then every one was closed, in order, and the failure is reported after
    expect(closed).toEqual(['redis', 'broken', 'dynamo', 'env', 'server']);
    expect(failure).toBeInstanceOf(AggregateError);
    expect((failure as AggregateError).errors).toEqual([new Error('socket hang up')]);
  });

  it('resolves when every close succeeds', async () => {
    const closed: string[] = [];
    await closeAll({ disconnect: () => closed.push('a') }, { close: () => Promise.resolve(void closed.push('b')) });
    expect(closed).toEqual(['a', 'b']);
  });
});
