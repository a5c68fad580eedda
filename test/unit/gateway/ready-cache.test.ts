import { describe, expect, it } from 'vitest';
import { cachedUpstreamCheck, type UpstreamSchemaCheck } from '../../../src/gateway/index.js';

describe('cachedUpstreamCheck', () => {
  it('shares one check among concurrent and later calls until it is older than its time to live', async () => {
    let nowMs = 0;
    let checks = 0;
    const cached = cachedUpstreamCheck(
      () => {
        checks += 1;
        return Promise.resolve<UpstreamSchemaCheck>({ isReady: true });
      },
      5_000,
      () => nowMs,
    );
    await Promise.all(Array.from({ length: 10 }, () => cached()));
    nowMs = 4_999;
    await cached();
    expect(checks).toBe(1);
    nowMs = 5_000;
    await cached();
    expect(checks).toBe(2);
  });
});
