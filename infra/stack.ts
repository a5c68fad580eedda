/**
 * The embedded default stack: for each of Redis, Temporal and DynamoDB, either
 * attach to the endpoint named by REDIS_URL / TEMPORAL_ADDRESS /
 * DYNAMODB_ENDPOINT (and check that it answers) or start a local process.
 * Used by `npm start` (profile `dev`, fixed ports, data kept under `.data/`)
 * and by the vitest globalSetup (profile `test`, free ports, throwaway data).
 *
 * An unreachable attached service or a component that cannot start is an
 * InfraError: callers fail, they never skip.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  REPO_ROOT,
  InfraError,
  checkDynamo,
  checkRedis,
  checkTemporal,
  freePort,
  localDynamoClient,
  startDynamo,
  startRedis,
  startReaper,
  startTemporal,
  stopProcess,
  type ManagedProcess,
} from './services.js';
import { ensureTables } from './tables.js';

export type StackProfile = 'dev' | 'test';

export interface StackOptions {
  profile: StackProfile;
  /** @default `<repo>/.data` for dev, `<repo>/.data/test` for test */
  dataDir?: string;
  /** Extra `key=value` Temporal dynamic config entries. */
  temporalDynamicConfig?: string[];
  /**
   * Stop what this stack starts if the calling process dies without stopping it
   * (infra/reaper.sh). `npm run infra:up`, which leaves services running, sets false.
   * @default true
   */
  reapOnExit?: boolean;
  /** Called with one line per step, for progress output. */
  onProgress?: (line: string) => void;
}

/** Endpoints of a running stack and a way to stop what was started. */
export interface Stack {
  redisUrl: string;
  temporalAddress: string;
  temporalNamespace: string;
  dynamodbEndpoint: string;
  dynamodbRegion: string;
  tablePrefix: string;
  /** Temporal Web UI, when the embedded dev server serves one. */
  temporalUiUrl?: string;
  dataDir: string;
  /** Names of the components this stack started (the others were attached). */
  started: string[];
  /** Environment variables that point the app at this stack. */
  env: Record<string, string>;
  stop: () => Promise<void>;
}

function portFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new InfraError('config', `${name} must be a TCP port (1..65535), got '${raw}'`);
  }
  return port;
}

async function attach(component: string, endpoint: string, check: () => Promise<boolean>): Promise<void> {
  let detail = 'no answer';
  try {
    if (await check()) return;
  } catch (error) {
    detail = error instanceof Error ? error.message : String(error);
  }
  throw new InfraError(component, `configured endpoint ${endpoint} is unreachable (${detail})`);
}

/**
 * Brings the stack up. Components start in parallel; if any fails, the ones
 * already started are stopped before the error is thrown.
 */
export async function upStack(options: StackOptions, env: NodeJS.ProcessEnv = process.env): Promise<Stack> {
  const progress = options.onProgress ?? (() => undefined);
  const isTest = options.profile === 'test';
  const dataDir = options.dataDir ?? join(REPO_ROOT, '.data', isTest ? 'test' : '');
  if (isTest) {
    // Test data is throwaway; a previous run's AOF or tables must not leak in.
    for (const sub of ['redis', 'temporal', 'dynamodb']) rmSync(join(dataDir, sub), { recursive: true, force: true });
  }
  const temporalNamespace = env['TEMPORAL_NAMESPACE'] ?? 'default';
  const dynamodbRegion = env['DYNAMODB_REGION'] ?? 'local';
  const tablePrefix = env['DYNAMODB_TABLE_PREFIX'] ?? 'tollgate_';
  const started: ManagedProcess[] = [];
  if (options.reapOnExit ?? true) startReaper(dataDir);

  const pick = async (name: string, devPort: number): Promise<number> => (isTest ? freePort() : portFromEnv(env, name, devPort));

  const redisTask = async (): Promise<string> => {
    const external = env['REDIS_URL'];
    if (external !== undefined && external !== '') {
      await attach('redis', external, () => checkRedis(external, 2_000));
      progress(`redis: attached to ${external.replace(/\/\/[^@]*@/, '//***@')}`);
      return external;
    }
    const port = await pick('TOLLGATE_REDIS_PORT', 6390);
    const fsync = env['TOLLGATE_REDIS_APPENDFSYNC'] === 'always' ? 'always' : 'everysec';
    started.push(await startRedis({ dataDir, port, appendfsync: fsync }));
    progress(`redis: started on 127.0.0.1:${port} (AOF appendfsync ${fsync})`);
    return `redis://127.0.0.1:${port}`;
  };

  let temporalUiUrl: string | undefined;
  const temporalTask = async (): Promise<string> => {
    const external = env['TEMPORAL_ADDRESS'];
    if (external !== undefined && external !== '') {
      await attach('temporal', external, () => checkTemporal(external, temporalNamespace));
      progress(`temporal: attached to ${external}`);
      return external;
    }
    const port = await pick('TOLLGATE_TEMPORAL_PORT', 7243);
    const httpPort = await pick('TOLLGATE_TEMPORAL_HTTP_PORT', 7244);
    const uiPort = isTest ? undefined : portFromEnv(env, 'TOLLGATE_TEMPORAL_UI_PORT', 8243);
    const extra = (env['TOLLGATE_TEMPORAL_DYNAMIC_CONFIG'] ?? '').split(/\s+/).filter((entry) => entry !== '');
    started.push(
      await startTemporal({
        dataDir,
        port,
        httpPort,
        ...(uiPort === undefined ? {} : { uiPort }),
        namespace: temporalNamespace,
        dynamicConfig: [...(options.temporalDynamicConfig ?? []), ...extra],
        persistent: true,
      }),
    );
    if (uiPort !== undefined) temporalUiUrl = `http://127.0.0.1:${uiPort}`;
    progress(`temporal: dev server started on 127.0.0.1:${port}`);
    return `127.0.0.1:${port}`;
  };

  const dynamoTask = async (): Promise<string> => {
    const external = env['DYNAMODB_ENDPOINT'];
    if (external !== undefined && external !== '') {
      await attach('dynamodb', external, () => checkDynamo(external, dynamodbRegion));
      progress(`dynamodb: attached to ${external}`);
      return external;
    }
    const port = await pick('TOLLGATE_DYNAMODB_PORT', 8010);
    started.push(await startDynamo({ dataDir, port, persistent: !isTest }));
    progress(`dynamodb: DynamoDB Local started on 127.0.0.1:${port}`);
    return `http://127.0.0.1:${port}`;
  };

  const stopStarted = async (): Promise<void> => {
    // Reverse start order is irrelevant here: the three are independent.
    await Promise.all(started.splice(0).map((proc) => stopProcess(proc)));
  };

  try {
    const results = await Promise.allSettled([redisTask(), temporalTask(), dynamoTask()]);
    const failures = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failures.length > 0) {
      throw failures.length === 1
        ? failures[0]?.reason
        : new InfraError('stack', failures.map((failure) => String(failure.reason)).join('\n'));
    }
    const [redisUrl, temporalAddress, dynamodbEndpoint] = results.map((result) => (result.status === 'fulfilled' ? result.value : '')) as [
      string,
      string,
      string,
    ];

    const dynamo = localDynamoClient(dynamodbEndpoint, dynamodbRegion);
    try {
      const tables = await ensureTables(dynamo, tablePrefix);
      progress(`dynamodb: tables ready (${tables.join(', ')})`);
    } finally {
      dynamo.destroy();
    }

    const stackEnv: Record<string, string> = {
      REDIS_URL: redisUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: temporalNamespace,
      DYNAMODB_ENDPOINT: dynamodbEndpoint,
      DYNAMODB_REGION: dynamodbRegion,
      DYNAMODB_TABLE_PREFIX: tablePrefix,
    };
    return {
      redisUrl,
      temporalAddress,
      temporalNamespace,
      dynamodbEndpoint,
      dynamodbRegion,
      tablePrefix,
      ...(temporalUiUrl === undefined ? {} : { temporalUiUrl }),
      dataDir,
      started: started.map((proc) => proc.name),
      env: stackEnv,
      stop: stopStarted,
    };
  } catch (error) {
    await stopStarted();
    throw error;
  }
}
