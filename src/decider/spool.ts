/**
 * The degraded-mode spool: usage admitted while Redis was unreachable, kept in
 * a local append-only file (one JSON line per event, fdatasync'd before the
 * request is answered) and replayed into the usage stream when Redis is back,
 * deduplicated by event id. Degraded traffic is still billed exactly.
 *
 * Replay first renames the file (new appends go to a fresh one), applies each
 * entry, and deletes the renamed file only when every entry is applied. A crash
 * mid-replay leaves it to be replayed again; the dedupe makes that harmless. A
 * torn last line (a crash mid-write) is skipped: its request was never answered;
 * on open the file is ended with a newline first, so the next append is not
 * glued to the torn bytes (which would lose it too).
 *
 * One spool file belongs to one process: `<path>.lock` holds its pid, and a
 * spool whose lock names a live process (or another spool of this process)
 * refuses to open. A lock left by a dead process (a SIGKILL) is taken over.
 */
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fdatasyncSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
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
  /** When it was spooled (local clock, ms); absent in entries written before it was recorded. */
  spooledAtMs?: number;
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
  /** When it was spooled (local clock, ms); absent in entries written before it was recorded. */
  spooledAtMs?: number;
}

export type SpoolEntry = SpoolEventEntry | SpoolVoidEntry;

export interface ReplayResult {
  appended: number;
  skipped: number;
  /** Lines that were not valid entries (a torn write). */
  torn: number;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already unusable
  }
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
    (entry['spooledAtMs'] === undefined || Number.isSafeInteger(entry['spooledAtMs'])) &&
    typeof entry['fields'] === 'object' &&
    entry['fields'] !== null
  );
}

/** Paths of the spools this process holds open (a second spool on one of them is refused). */
const HELD = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What waits in a spool, for `/metrics` and `/ready`. */
export interface SpoolStats {
  /** Entries waiting to be replayed. */
  entries: number;
  /** When the oldest waiting entry was spooled (local clock, ms); undefined when none waits. */
  oldestAtMs: number | undefined;
}

/** A spool file at `path` (its folder is created). */
export class FileSpool {
  private fd: number | undefined;
  private pending = 0;
  private queued: { line: string; spooledAtMs: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private oldestAtMs: number | undefined;
  private readonly lockPath: string;

  /** @throws Error when another live process (or another spool of this one) holds `path` */
  constructor(private readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.lockPath = `${path}.lock`;
    this.lock();
    this.endTornTail();
    // After a restart, both the live file and interrupted replays still wait.
    this.recount();
  }

  /** Entries waiting to be replayed (including those of an interrupted replay). */
  get size(): number {
    return this.pending;
  }

  get stats(): SpoolStats {
    return { entries: this.pending, oldestAtMs: this.pending === 0 ? undefined : this.oldestAtMs };
  }

  /** Whether the spool's folder can be written now (false: a degraded admission would be lost). */
  isWritable(): boolean {
    try {
      accessSync(dirname(this.path), constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Appends one entry durably (written and fdatasync'd before returning), on its own.
   * @throws the file system's error (the folder gone, the disk full): the entry is not spooled
   */
  append(entry: SpoolEntry): void {
    const spooledAtMs = Date.now();
    this.writeDurably(`${JSON.stringify({ ...entry, spooledAtMs })}\n`);
    this.counted(1, spooledAtMs);
  }

  /**
   * Appends one entry durably, by group commit: every entry appended in one turn of the event loop is written
   * and fdatasync'd together (one sync for the batch instead of one per entry), and each promise resolves once
   * its entry is on disk.
   * @throws (rejects with) the file system's error: the entry is not spooled
   */
  appendDurably(entry: SpoolEntry): Promise<void> {
    const spooledAtMs = Date.now();
    return new Promise((resolve, reject) => {
      this.queued.push({ line: `${JSON.stringify({ ...entry, spooledAtMs })}\n`, spooledAtMs, resolve, reject });
      if (this.queued.length === 1) setImmediate(() => this.flush());
    });
  }

  /** Writes what `appendDurably` queued, with one fdatasync. */
  private flush(): void {
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0) return;
    try {
      this.writeDurably(batch.map((item) => item.line).join(''));
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    this.counted(batch.length, batch[0]?.spooledAtMs ?? Date.now());
    for (const item of batch) item.resolve();
  }

  private writeDurably(text: string): void {
    try {
      // a file removed (or replaced) under an open descriptor would swallow the entry: write to the path's file
      if (this.fd !== undefined && statSync(this.path, { throwIfNoEntry: false })?.ino !== fstatSync(this.fd).ino) {
        closeQuietly(this.fd);
        this.fd = undefined;
      }
      this.fd ??= openSync(this.path, 'a');
      writeSync(this.fd, text);
      fdatasyncSync(this.fd);
    } catch (error) {
      // a descriptor of a file that is gone (or failing) is not reused: the next append opens afresh
      if (this.fd !== undefined) closeQuietly(this.fd);
      this.fd = undefined;
      throw error;
    }
  }

  private counted(entries: number, oldestAtMs: number): void {
    if (this.pending === 0) this.oldestAtMs = oldestAtMs;
    this.pending += entries;
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
      this.recount();
    }
    return result;
  }

  /** Counts the waiting entries and finds the oldest (a folder that cannot be read counts as empty). */
  private recount(): void {
    let entries = 0;
    let oldestAtMs: number | undefined;
    try {
      const files = existsSync(this.path) ? [...this.readAll(), this.path] : this.readAll();
      for (const file of files) {
        const parsed = this.parse(file).entries;
        entries += parsed.length;
        // an entry from before `spooledAtMs` was recorded is as old as its file's last change
        const fileMs = parsed.length > 0 && parsed.some((entry) => entry.spooledAtMs === undefined) ? statSync(file).mtimeMs : undefined;
        for (const entry of parsed) {
          const atMs = entry.spooledAtMs ?? fileMs ?? Date.now();
          oldestAtMs = oldestAtMs === undefined ? atMs : Math.min(oldestAtMs, atMs);
        }
      }
    } catch {
      // the folder is gone: nothing can be read back (`isWritable` says so)
    }
    this.pending = entries;
    this.oldestAtMs = oldestAtMs;
  }

  /** Takes `<path>.lock` for this process, or throws when a live process holds it. */
  private lock(): void {
    if (HELD.has(this.path)) throw new Error(`spool ${this.path} is already open in this process`);
    if (existsSync(this.lockPath)) {
      const holder = Number(readFileSync(this.lockPath, 'utf8').trim());
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new Error(`spool ${this.path} belongs to process ${holder}: each instance needs a spool path of its own`);
      }
    }
    writeFileSync(this.lockPath, `${process.pid}\n`);
    HELD.add(this.path);
  }

  /** Ends a torn last line (a crash mid-write) with a newline, so the next entry starts on a line of its own. */
  private endTornTail(): void {
    if (!existsSync(this.path)) return;
    const size = statSync(this.path).size;
    if (size === 0) return;
    const fd = openSync(this.path, 'r+');
    try {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] === 0x0a) return;
      writeSync(fd, '\n', size);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
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

  /** Closes the file and gives the spool up (another process may open it). */
  close(): void {
    this.flush();
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
    if (HELD.delete(this.path)) rmSync(this.lockPath, { force: true });
  }
}
