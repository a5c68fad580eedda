/**
 * The degraded-mode spool: usage admitted while Redis was unreachable, kept in
 * a local append-only file (one JSON line per event, fdatasync'd before the
 * request is answered) and replayed into the usage stream when Redis is back,
 * deduplicated by event id. Degraded traffic is still billed exactly.
 *
 * Replay first renames the file (new appends go to a fresh one), applies each
 * entry, and deletes the renamed file only when every entry is applied. A crash
 * mid-replay leaves it to be replayed again; the dedupe makes that harmless. A
 * torn last line (a crash mid-write) is skipped: its request was never answered.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** One spooled usage event (admitted or settled while degraded). */
export interface SpoolEventEntry {
  kind: 'event';
  tenant: string;
  eventId: string;
  /** The request the event belongs to: replay skips it if the decider recorded that request. */
  requestId: string;
  recordedAs: 'decision' | 'settlement';
  /** Billing period the units count in, and how many (negative for refunds). */
  periodStartMs: number;
  admittedDelta: number;
  /** A whale tenant's sub-shard count at the decision (absent: 1). */
  subShards?: number;
  fields: Record<string, string>;
}

/**
 * A request that was sent to Redis, timed out and was then refused locally: if
 * Redis ran it after all (it sat in a socket buffer), replay settles it at
 * actual cost 0, so a request that was not served is not billed.
 */
export interface SpoolVoidEntry {
  kind: 'void';
  /** The DecideInput, JSON-safe. */
  input: Record<string, unknown>;
  decidedAtMs: number;
}

export type SpoolEntry = SpoolEventEntry | SpoolVoidEntry;

export interface ReplayResult {
  appended: number;
  skipped: number;
  /** Lines that were not valid entries (a torn write). */
  torn: number;
}

function isEntry(value: unknown): value is SpoolEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  if (entry['kind'] === 'void') {
    return typeof entry['input'] === 'object' && entry['input'] !== null && Number.isSafeInteger(entry['decidedAtMs']);
  }
  return (
    entry['kind'] === 'event' &&
    typeof entry['tenant'] === 'string' &&
    typeof entry['eventId'] === 'string' &&
    typeof entry['requestId'] === 'string' &&
    (entry['recordedAs'] === 'decision' || entry['recordedAs'] === 'settlement') &&
    Number.isSafeInteger(entry['periodStartMs']) &&
    Number.isSafeInteger(entry['admittedDelta']) &&
    (entry['subShards'] === undefined || Number.isSafeInteger(entry['subShards'])) &&
    typeof entry['fields'] === 'object' &&
    entry['fields'] !== null
  );
}

/** A spool file at `path` (its folder is created). */
export class FileSpool {
  private fd: number | undefined;
  private pending = 0;

  constructor(private readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    // After a restart, both the live file and interrupted replays still wait.
    this.pending = this.countWaiting();
  }

  /** Entries waiting to be replayed (including those of an interrupted replay). */
  get size(): number {
    return this.pending;
  }

  /** Appends one entry durably (written and fdatasync'd before returning). */
  append(entry: SpoolEntry): void {
    this.fd ??= openSync(this.path, 'a');
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fdatasyncSync(this.fd);
    this.pending += 1;
  }

  /**
   * Applies every spooled entry with `apply` (which must be idempotent). Stops
   * at the first failure, keeping what is left for the next replay.
   */
  async replay(apply: (entry: SpoolEntry) => Promise<'appended' | 'skipped'>): Promise<ReplayResult> {
    const result: ReplayResult = { appended: 0, skipped: 0, torn: 0 };
    if (existsSync(this.path)) {
      if (this.fd !== undefined) {
        closeSync(this.fd);
        this.fd = undefined;
      }
      renameSync(this.path, `${this.path}.replay-${Date.now()}-${process.pid}`);
    }
    try {
      for (const file of this.readAll()) {
        const { entries, torn } = this.parse(file);
        result.torn += torn;
        for (const entry of entries) {
          const outcome = await apply(entry);
          result[outcome] += 1;
        }
        rmSync(file, { force: true });
      }
    } finally {
      this.pending = this.countWaiting();
    }
    return result;
  }

  private countWaiting(): number {
    const files = existsSync(this.path) ? [...this.readAll(), this.path] : this.readAll();
    return files.reduce((sum, file) => sum + this.parse(file).entries.length, 0);
  }

  /** Replay files first (oldest first), so events keep their order. */
  private readAll(): string[] {
    const dir = dirname(this.path);
    const prefix = `${basename(this.path)}.replay-`;
    return readdirSync(dir)
      .filter((name) => name.startsWith(prefix))
      .sort()
      .map((name) => join(dir, name));
  }

  private parse(file: string): { entries: SpoolEntry[]; torn: number } {
    const entries: SpoolEntry[] = [];
    let torn = 0;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        const value: unknown = JSON.parse(line);
        if (isEntry(value)) entries.push(value);
        else torn += 1;
      } catch {
        torn += 1;
      }
    }
    return { entries, torn };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
