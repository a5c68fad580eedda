import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileSpool, type SpoolEntry } from '../../../src/decider/spool.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-spool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = (eventId: string): SpoolEntry => ({
  kind: 'event',
  tenant: 'acme',
  eventId,
  requestId: eventId,
  recordedAs: 'decision',
  periodStartMs: 0,
  admittedDelta: 3,
  fields: { type: 'usage.degraded.v1' },
});

describe('FileSpool', () => {
  it('keeps entries across a restart, skips a torn last line, and replays each once in order', async () => {
    // given a spool with two entries and a torn write, then a restart
    const path = join(dir, 'a.spool');
    const first = new FileSpool(path);
    first.append(entry('e1'));
    first.append(entry('e2'));
    first.close();
    appendFileSync(path, '{"kind":"event","tena');
    const restarted = new FileSpool(path);
    expect(restarted.size).toBe(2);
    // when it is replayed
    const seen: string[] = [];
    const result = await restarted.replay((spooled) => {
      seen.push(spooled.kind === 'event' ? spooled.eventId : 'void');
      return Promise.resolve('appended');
    });
    // then
    expect(seen).toEqual(['e1', 'e2']);
    expect(result).toEqual({ appended: 2, skipped: 0, torn: 1 });
    expect(restarted.size).toBe(0);
    expect((await restarted.replay(() => Promise.resolve('appended'))).appended).toBe(0);
  });

  it('keeps what a failed replay did not apply, for the next replay', async () => {
    const spool = new FileSpool(join(dir, 'b.spool'));
    spool.append(entry('e1'));
    spool.append(entry('e2'));
    await expect(
      spool.replay((spooled) =>
        spooled.kind === 'event' && spooled.eventId === 'e2' ? Promise.reject(new Error('down')) : Promise.resolve('appended'),
      ),
    ).rejects.toThrow('down');
    expect(spool.size).toBe(2);
    const again: string[] = [];
    await spool.replay((spooled) => {
      again.push(spooled.kind === 'event' ? spooled.eventId : 'void');
      return Promise.resolve('skipped');
    });
    // e1 comes again (the apply is idempotent), e2 is not lost
    expect(again).toEqual(['e1', 'e2']);
    expect(spool.size).toBe(0);
  });
});
