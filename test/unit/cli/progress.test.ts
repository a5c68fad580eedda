import { describe, expect, it } from 'vitest';
import { progressBar, progressOf } from '../../../src/cli/progress.js';

describe('progressBar', () => {
  it('fills in proportion to the work done', () => {
    expect(progressBar(0, 40, 'tenants')).toBe(`[${'.'.repeat(30)}]  0/40 tenants`);
    expect(progressBar(20, 40, 'tenants')).toBe(`[${'#'.repeat(15)}${'.'.repeat(15)}] 20/40 tenants`);
    expect(progressBar(40, 40, 'tenants')).toBe(`[${'#'.repeat(30)}] 40/40 tenants`);
    expect(progressBar(0, 0, 'tenants')).toBe(`[${'#'.repeat(30)}] 0/0 tenants`);
  });

  it('shows nothing without a terminal (no progress in the io)', () => {
    const lines: string[] = [];
    const io = { out: () => undefined, err: () => undefined, env: {}, runApiProcess: () => Promise.resolve() };
    progressOf(io, 2, 'x').step(1);
    progressOf({ ...io, progress: (text) => lines.push(text) }, 2, 'x').step(1);
    expect(lines).toEqual([progressBar(1, 2, 'x')]);
  });
});
