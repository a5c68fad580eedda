import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  it('does not glue the next entry to a torn last line: an entry appended after the restart is kept', async () => {
    // given a spool whose process died mid-write
    const path = join(dir, 'torn.spool');
    const first = new FileSpool(path);
    first.append(entry('e1'));
    first.close();
    appendFileSync(path, '{"kind":"event","eventId":"half');
    // when the restarted process spools another entry
    const restarted = new FileSpool(path);
    restarted.append(entry('e2'));
    // then both whole entries are kept and replayed, the torn one skipped
    expect(restarted.size).toBe(2);
    const seen: string[] = [];
    const result = await restarted.replay((spooled) => {
      seen.push(spooled.kind === 'event' ? spooled.eventId : 'void');
      return Promise.resolve('appended');
    });
    expect(seen).toEqual(['e1', 'e2']);
    expect(result.torn).toBe(1);
    restarted.close();
  });

  it('belongs to one process: a spool held by a live process (or open in this one) is refused, a dead holder is taken over', () => {
    const path = join(dir, 'lock.spool');
    const spool = new FileSpool(path);
    expect(() => new FileSpool(path)).toThrow(/already open in this process/);
    spool.close();
    // the parent process (the test runner) is alive: its spool is not taken
    writeFileSync(`${path}.lock`, `${process.ppid}\n`);
    expect(() => new FileSpool(path)).toThrow(/belongs to process/);
    // a pid that cannot be running (above the kernel's pid_max) left its lock behind: taken over
    writeFileSync(`${path}.lock`, '2147483646\n');
    const again = new FileSpool(path);
    expect(readFileSync(`${path}.lock`, 'utf8').trim()).toBe(String(process.pid));
    again.close();
  });

  it('reports how many entries wait and when the oldest was spooled, also after a restart', () => {
    const path = join(dir, 'stats.spool');
    const spool = new FileSpool(path);
    expect(spool.stats).toEqual({ entries: 0, oldestAtMs: undefined });
    const before = Date.now();
    spool.append(entry('e1'));
    spool.append(entry('e2'));
    const { entries, oldestAtMs } = spool.stats;
    expect(entries).toBe(2);
    expect(oldestAtMs).toBeGreaterThanOrEqual(before);
    expect(oldestAtMs).toBeLessThanOrEqual(Date.now());
    spool.close();
    expect(new FileSpool(path).stats).toEqual({ entries: 2, oldestAtMs });
  });

  it('says when its folder is gone, and an append then throws instead of pretending', () => {
    const folder = mkdtempSync(join(dir, 'gone-'));
    const spool = new FileSpool(join(folder, 'g.spool'));
    spool.append(entry('e1'));
    expect(spool.isWritable()).toBe(true);
    rmSync(folder, { recursive: true, force: true });
    expect(spool.isWritable()).toBe(false);
    expect(() => spool.append(entry('e2'))).toThrow();
    spool.close();
  });

  it('commits the entries of one event-loop turn together: each resolves only once it is in the file, all in order', async () => {
    const path = join(dir, 'group.spool');
    const spool = new FileSpool(path);
    const ids = Array.from({ length: 200 }, (_, i) => `g${i}`);
    const linesAtResolve: number[] = [];
    await Promise.all(
      ids.map((id) =>
        spool.appendDurably(entry(id)).then(() => linesAtResolve.push(readFileSync(path, 'utf8').split('\n').filter(Boolean).length)),
      ),
    );
    // every entry was in the file when its promise resolved, and the file holds them in order
    expect(Math.min(...linesAtResolve)).toBe(200);
    const written = readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { eventId: string }).eventId);
    expect(written).toEqual(ids);
    expect(spool.size).toBe(200);
    // a later turn's entries are a batch of their own, appended after
    await spool.appendDurably(entry('late'));
    expect(spool.size).toBe(201);
    spool.close();
  });

  it('rejects every entry of a batch the disk refused, and counts none of them', async () => {
    const folder = mkdtempSync(join(dir, 'gone-batch-'));
    const spool = new FileSpool(join(folder, 'g.spool'));
    rmSync(folder, { recursive: true, force: true });
    const outcomes = await Promise.allSettled(['b1', 'b2', 'b3'].map((id) => spool.appendDurably(entry(id))));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(spool.size).toBe(0);
    spool.close();
  });
});
