/**
 * Workers for integration tests:
 * - `startWorkerProcess`: a tollgate worker in its own process
 *   (`meter-worker.ts`), pointed at the test stack, that tests SIGKILL and
 *   restart; it reports `ready` and the point it crashed itself at.
 * - `writeWorkflowBundle`: the workflow code bundled once per file, so
 *   restarted workers start in a second (optionally with test interceptors).
 * - `runInProcessWorker`: the same worker inside the test process, with a stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type NativeConnection } from '@temporalio/worker';
import { createLogger, type AppConfig } from '../../src/shared/index.js';
import { createTollgateWorker, workflowsPath } from '../../src/workflows/index.js';
import { stackEnv } from './stack.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A worker process's life. */
export interface WorkerLife {
  child: ChildProcess;
  /** Resolves once the worker is created; rejects (with its stderr) when it exits first. */
  ready: Promise<void>;
  exited: Promise<number | null>;
  /** What the process printed after `crash ` before killing itself (a stage, a workflow point, `webhook`). */
  crashed: () => string | undefined;
  /** The whole `crash …` line's words after `crash ` (e.g. `webhook <key>`). */
  crashLine: () => string[];
}

/** Every child started by `startWorkerProcess` that has not exited (for afterAll cleanup). */
export const workerProcesses = new Set<ChildProcess>();

/**
 * Starts `test/support/meter-worker.ts` against the test stack with `env` on top
 * (task queue, bundle, crash point, config overrides).
 */
export function startWorkerProcess(env: Record<string, string>): WorkerLife {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/support/meter-worker.ts')], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      LOG_LEVEL: 'silent',
      ...stackEnv(),
      ...env,
    },
  });
  workerProcesses.add(child);
  let output = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      workerProcesses.delete(child);
      resolve(code);
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready\n')) resolve();
    });
    void exited.then(() => {
      if (!output.includes('ready\n')) reject(new Error(`worker exited before it was ready:\n${stderr}`));
    });
  });
  const crashLine = (): string[] => /^crash (.+)$/m.exec(output)?.[1]?.split(' ') ?? [];
  return { child, ready, exited, crashed: () => crashLine()[0], crashLine };
}

/** SIGKILLs every worker process still running. */
export function killWorkerProcesses(): void {
  for (const child of workerProcesses) child.kill('SIGKILL');
}

/**
 * Bundles the workflow code (with test interceptor modules if given) into
 * `<dir>/workflows-<random>.js`. @returns the bundle's path
 */
export async function writeWorkflowBundle(dir: string, options: { interceptorModules?: string[] } = {}): Promise<string> {
  const bundle = await bundleWorkflowCode({
    workflowsPath: workflowsPath(),
    ...(options.interceptorModules === undefined ? {} : { workflowInterceptorModules: options.interceptorModules }),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `workflows-${randomBytes(4).toString('hex')}.js`);
  writeFileSync(path, bundle.code);
  return path;
}

/** Runs a tollgate worker in this process on `taskQueue`. @returns its stop */
export async function runInProcessWorker(input: {
  config: AppConfig;
  connection: NativeConnection;
  taskQueue: string;
}): Promise<() => Promise<void>> {
  const { worker, close } = await createTollgateWorker({
    config: input.config,
    connection: input.connection,
    logger: createLogger({ level: 'silent', name: 'test' }),
    taskQueue: input.taskQueue,
  });
  const running = worker.run();
  return async () => {
    worker.shutdown();
    await running;
    close();
  };
}
