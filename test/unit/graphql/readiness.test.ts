import { describe, expect, it } from 'vitest';
import { runReadiness } from '../../../src/graphql/index.js';
import { DependencyError } from '../../../src/shared/index.js';

describe('runReadiness', () => {
  it('is ready only when every check passes, and reports each failure by code', async () => {
    // given one healthy, one failing with our code, one foreign failure, one that never answers
    const report = await runReadiness(
      [
        { name: 'ok', run: () => Promise.resolve() },
        { name: 'redis', run: () => Promise.reject(new DependencyError('REDIS_UNAVAILABLE', 'down')) },
        { name: 'foreign', run: () => Promise.reject(new Error('secret internal detail')) },
        { name: 'hangs', run: () => new Promise<void>(() => undefined) },
      ],
      50,
    );
    // then
    expect(report.isReady).toBe(false);
    expect(report.checks['ok']?.isOk).toBe(true);
    expect(report.checks['redis']).toMatchObject({ isOk: false, code: 'REDIS_UNAVAILABLE' });
    expect(report.checks['foreign']).toMatchObject({ isOk: false, code: 'UNAVAILABLE' });
    expect(report.checks['hangs']).toMatchObject({ isOk: false, code: 'TIMEOUT' });
    expect(JSON.stringify(report)).not.toContain('secret');
  });

  it('is ready when all checks pass', async () => {
    const report = await runReadiness([{ name: 'a', run: () => Promise.resolve() }], 1_000);
    expect(report).toMatchObject({ isReady: true, checks: { a: { isOk: true } } });
  });
});
