/**
 * `npm start`: brings up the embedded stack (or attaches to the endpoints the
 * environment names), then the API (serving the demo, or with `TOLLGATE_UPSTREAM`
 * set, gateway mode in front of that upstream) and the worker, prints the URLs, and on
 * Ctrl-C (SIGINT) or SIGTERM stops everything it started: the API and the
 * worker first (they drain), then the services. If the API or the worker dies,
 * everything else is stopped too and the exit code is non-zero.
 *
 * Children run in their own process groups, so a terminal's Ctrl-C reaches
 * only this supervisor, which stops them in order.
 */
import { join } from 'node:path';
import { InfraError, REPO_ROOT, isAlive, spawnManaged, stopProcess, type ManagedProcess } from './services.js';
import { upStack, type Stack } from './stack.js';
import { ensureDashboardBuilt } from './dashboard-build.js';

const startedAt = performance.now();
const log = (line: string): void => console.log(`[tollgate] ${line}`);
const elapsed = (): string => `${((performance.now() - startedAt) / 1000).toFixed(1)} s`;

function assertRunning(proc: ManagedProcess): void {
  if (!isAlive(proc.pid)) throw new InfraError(proc.name, `exited during startup; see ${proc.logFile}`);
}

async function waitHttp(url: string, proc: ManagedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    assertRunning(proc);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 150));
  }
  throw new InfraError(proc.name, `${url} did not answer 200 within ${timeoutMs} ms; see ${proc.logFile}`);
}

async function waitWorkerPolling(stack: Stack, taskQueue: string, proc: ManagedProcess, timeoutMs: number): Promise<void> {
  const { Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address: stack.temporalAddress });
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      assertRunning(proc);
      const reply = await connection.workflowService.describeTaskQueue({
        namespace: stack.temporalNamespace,
        taskQueue: { name: taskQueue },
        taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
      });
      if ((reply.pollers ?? []).length > 0) return;
      await new Promise((resolveWait) => setTimeout(resolveWait, 200));
    }
    throw new InfraError(proc.name, `no worker polled task queue '${taskQueue}' within ${timeoutMs} ms; see ${proc.logFile}`);
  } finally {
    await connection.close();
  }
}

async function main(): Promise<number> {
  const dataDir = join(REPO_ROOT, '.data');
  const stack = await upStack({ profile: 'dev', dataDir, onProgress: (line) => log(`${line} (${elapsed()})`) });
  const apps: ManagedProcess[] = [];
  let stopping: Promise<void> | undefined;

  // Idempotent: every caller waits for the same, single shutdown.
  const stopAll = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log(`stopping (${reason})`);
      await Promise.all(apps.map((proc) => stopProcess(proc, 15_000)));
      await stack.stop();
      log('stopped; nothing left running');
    })();
    return stopping;
  };

  const host = process.env['API_HOST'] ?? '127.0.0.1';
  const port = process.env['API_PORT'] ?? '4000';
  const taskQueue = process.env['TEMPORAL_TASK_QUEUE'] ?? 'tollgate';
  const workerMetricsPort = process.env['WORKER_METRICS_PORT'] ?? '9464';
  const childEnv = { ...process.env, ...stack.env, API_HOST: host, API_PORT: port, WORKER_METRICS_PORT: workerMetricsPort };
  const tsx = ['--import', 'tsx'];
  const upstream = process.env['TOLLGATE_UPSTREAM'] === '' ? undefined : process.env['TOLLGATE_UPSTREAM'];

  const exitCode = new Promise<number>((resolveExit) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => {
        void stopAll(signal).then(() => resolveExit(0));
      });
    }
    const watchdog = setInterval(() => {
      if (stopping !== undefined) return;
      for (const proc of apps) {
        try {
          process.kill(proc.pid, 0);
        } catch {
          clearInterval(watchdog);
          log(`${proc.name} exited unexpectedly; see ${proc.logFile}`);
          void stopAll(`${proc.name} died`).then(() => resolveExit(1));
          return;
        }
      }
    }, 500); // ref'd on purpose: it keeps the supervisor alive until a signal
  });

  // the dashboard (issue 18): built when missing or older than its sources; a failed build leaves /dashboard answering 503
  try {
    if (ensureDashboardBuilt()) log(`dashboard built into dist/dashboard (${elapsed()})`);
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
  }
  try {
    const api = spawnManaged({
      name: 'api',
      command: process.execPath,
      args: [...tsx, 'src/graphql/server.ts'],
      dataDir,
      env: childEnv,
    });
    apps.push(api);
    const worker = spawnManaged({
      name: 'worker',
      command: process.execPath,
      args: [...tsx, 'src/workflows/worker.ts'],
      dataDir,
      env: childEnv,
    });
    apps.push(worker);
    // gateway mode: /ready also asks the upstream, which need not be up for the gateway to start (it says so)
    const probe = upstream === undefined ? 'ready' : 'health';
    await Promise.all([waitHttp(`http://${host}:${port}/${probe}`, api, 60_000), waitWorkerPolling(stack, taskQueue, worker, 120_000)]);
  } catch (error) {
    await stopAll('startup failed');
    throw error;
  }

  log(`ready in ${elapsed()}`);
  if (upstream === undefined) log(`  GraphQL API   http://${host}:${port}/graphql (the demo schema)`);
  else {
    log(`  GraphQL API   http://${host}:${port}/graphql: gateway mode, forwarding to ${upstream.replace(/\/\/[^@/]*@/, '//***@')}`);
    log(
      `                schema ${process.env['TOLLGATE_UPSTREAM_SCHEMA'] ?? 'introspected'}, costs ${process.env['TOLLGATE_COSTS'] ?? 'none'}`,
    );
  }
  log(`  dashboard     http://${host}:${port}/dashboard (sign in with a demo API key or the admin token)`);
  log(`  usage API     http://${host}:${port}/usage/graphql (a tenant's own API key; never charged)`);
  log(`  admin API     http://${host}:${port}/admin/graphql (the tollgate CLI: npx tollgate --help)`);
  if (process.env['API_DEMO_SEED'] !== 'false') {
    // first-start credentials: paths only, the secrets stay in their 0600 files
    log(`  admin token   ${process.env['API_ADMIN_TOKEN_FILE'] ?? '.data/admin-token.json'} (first start; the CLI reads it)`);
    if (upstream === undefined) log(`  demo API keys ${process.env['API_DEMO_KEYS_FILE'] ?? '.data/demo-keys.json'}`);
  }
  log(`  health        http://${host}:${port}/health   readiness http://${host}:${port}/ready`);
  log(
    `  metrics       http://${host}:${port}/metrics (API, stream lag, audit drift)   http://${host}:${workerMetricsPort}/metrics (worker: pump)`,
  );
  if (stack.temporalUiUrl !== undefined) log(`  Temporal UI   ${stack.temporalUiUrl}`);
  log(`  Redis         ${stack.redisUrl}`);
  log(`  Temporal      ${stack.temporalAddress} (namespace ${stack.temporalNamespace}, task queue ${taskQueue})`);
  log(`  DynamoDB      ${stack.dynamodbEndpoint} (tables ${stack.tablePrefix}*)`);
  log(`  logs          ${join(dataDir, 'logs')}`);
  log('press Ctrl-C to stop everything');
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`[tollgate] ${error instanceof InfraError ? error.message : error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
