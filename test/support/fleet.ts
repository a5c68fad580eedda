/**
 * The pump fleet as the fleet tests see it: the real worker entry point
 * (src/workflows/worker.ts) spawned on a test's own Temporal and Redis, its
 * /ready and /metrics, and the facts of every pump run's history
 * (length, signals, workflow task timeouts with when they happened).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { workerProcesses } from './worker-process.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE: a workflow task a worker took but did not finish in time. */
export const START_TO_CLOSE = 1;
/** TIMEOUT_TYPE_SCHEDULE_TO_START: a task left on a sticky queue no worker polled in time, handed to the shared queue. */
export const SCHEDULE_TO_START = 2;

export interface EntryPoint {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** What it printed so far (stdout and stderr). */
  output: () => string;
}

/** Spawns the real worker entry point with `env` (nothing else inherited but PATH and HOME); it bundles the workflows itself. */
export function startEntryPoint(env: Record<string, string>): EntryPoint {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/workflows/worker.ts'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AUDIT_ENABLED: 'false',
      JOBS_SWEEP_ENABLED: 'false',
      ACCOUNT_ENABLED: 'false',
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
  workerProcesses.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      workerProcesses.delete(child);
      resolve(code);
    }),
  );
  return { child, exited, output: () => output };
}

/** The worker's `/ready` (status and JSON body) and `/metrics` text. */
export async function scrape(port: number): Promise<{ ready: number; readyBody: Record<string, unknown>; metrics: string }> {
  const ready = await fetch(`http://127.0.0.1:${port}/ready`);
  const readyBody = (await ready.json()) as Record<string, unknown>;
  return { ready: ready.status, readyBody, metrics: await (await fetch(`http://127.0.0.1:${port}/metrics`)).text() };
}

/** The value of an unlabelled sample in a Prometheus text. */
export function gauge(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`${name} not in:\n${text}`);
  return Number(match[1]);
}

export interface WorkflowTaskTimeout {
  workflowId: string;
  /** temporal.api.enums.v1.TimeoutType (1 start-to-close, 2 schedule-to-start: a sticky queue's task handed over). */
  type: number;
  /** When the timeout was recorded, ms. */
  atMs: number;
  /** Identity of the worker that had started the task ('' when none had). */
  identity: string;
}

export interface RunFacts {
  workflowId: string;
  runId: string;
  events: number;
  timeouts: WorkflowTaskTimeout[];
  signals: number;
}

const timeMs = (time: { seconds?: number | { toNumber(): number } | null; nanos?: number | null } | null | undefined): number => {
  const seconds = time?.seconds ?? 0;
  return (typeof seconds === 'number' ? seconds : seconds.toNumber()) * 1_000 + Math.floor((time?.nanos ?? 0) / 1_000_000);
};

/** Every meterPump run that was open at or after `sinceMs`, with its history's facts (histories fetched `concurrency` at once). */
export async function pumpRunsSince(client: Client, sinceMs: number, concurrency = 16): Promise<RunFacts[]> {
  const runs: { workflowId: string; runId: string }[] = [];
  for await (const run of client.workflow.list({ query: `WorkflowType = 'meterPump'` })) {
    if (run.closeTime !== undefined && run.closeTime.getTime() < sinceMs) continue;
    runs.push({ workflowId: run.workflowId, runId: run.runId });
  }
  const facts: RunFacts[] = [];
  const lanes = Array.from({ length: concurrency }, async () => {
    for (let run = runs.shift(); run !== undefined; run = runs.shift()) {
      const { workflowId, runId } = run;
      const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
      const events = history.events ?? [];
      const identities = new Map(events.map((event) => [Number(event.eventId), event.workflowTaskStartedEventAttributes?.identity ?? '']));
      const timeouts = events.flatMap((event) => {
        const attributes = event.workflowTaskTimedOutEventAttributes;
        if (attributes === undefined || attributes === null) return [];
        const identity = identities.get(Number(attributes.startedEventId)) ?? '';
        return [{ workflowId, type: Number(attributes.timeoutType), atMs: timeMs(event.eventTime), identity }];
      });
      const signals = events.filter((event) => event.workflowExecutionSignaledEventAttributes != null).length;
      facts.push({ workflowId, runId, events: events.length, timeouts, signals });
    }
  });
  await Promise.all(lanes);
  return facts;
}

/** The workflow task timeouts of `runs` recorded at or after `sinceMs`. */
export function timeoutsSince(runs: readonly RunFacts[], sinceMs: number): WorkflowTaskTimeout[] {
  return runs.flatMap((run) => run.timeouts.filter((timeout) => timeout.atMs >= sinceMs));
}

/**
 * `N (x start-to-close, y schedule-to-start; by worker: pid@host k, ...)` for a log line, and with `sinceMs` each
 * start-to-close timeout's workflow and when it happened (`meter/0-15 +12.3 s`).
 */
export function describeTimeouts(timeouts: readonly WorkflowTaskTimeout[], sinceMs?: number): string {
  const byType = (type: number): number => timeouts.filter((timeout) => timeout.type === type).length;
  const byWorker = new Map<string, number>();
  for (const timeout of timeouts) byWorker.set(timeout.identity || 'none', (byWorker.get(timeout.identity || 'none') ?? 0) + 1);
  const workers = [...byWorker].map(([identity, count]) => `${identity} ${count}`).join(', ');
  const summary = `${timeouts.length} (${byType(START_TO_CLOSE)} start-to-close, ${byType(SCHEDULE_TO_START)} schedule-to-start; by worker: ${workers || '-'})`;
  if (sinceMs === undefined) return summary;
  const when = timeouts
    .filter((timeout) => timeout.type === START_TO_CLOSE)
    .map((timeout) => `${timeout.workflowId} +${((timeout.atMs - sinceMs) / 1_000).toFixed(1)} s`);
  return when.length === 0 ? summary : `${summary}; start-to-close: ${when.join(', ')}`;
}
