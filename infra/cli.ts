/**
 * `npm run infra:up|down|status|start|stop|tables|cluster`: manage the
 * embedded services by hand. `up` (all three) and `start <component>` leave
 * them running in the background (pid files under `.data/pids`); `stop <name>`
 * stops one, `down` stops everything those pid files name.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  REPO_ROOT,
  InfraError,
  isAlive,
  localDynamoClient,
  reapStale,
  startDynamo,
  startRedis,
  startRedisCluster,
  startTemporal,
} from './services.js';
import { upStack } from './stack.js';
import { ensureTables } from './tables.js';

const EXPECTED_COMMAND: Record<string, string> = {
  redis: 'redis-server',
  temporal: 'start-dev',
  dynamodb: 'dynamodbv2.local.main.ServerRunner',
  api: 'server',
  worker: 'worker',
};

function pidFiles(dataDir: string): { name: string; file: string }[] {
  const dir = join(dataDir, 'pids');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((file) => file.endsWith('.pid'))
    .map((file) => ({ name: file.slice(0, -'.pid'.length), file: join(dir, file) }));
}

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'status';
  const dataDir = join(REPO_ROOT, '.data');
  switch (command) {
    case 'up': {
      const stack = await upStack({ profile: 'dev', reapOnExit: false, onProgress: (line) => console.log(line) });
      for (const [name, value] of Object.entries(stack.env)) console.log(`export ${name}=${value}`);
      return 0;
    }
    case 'start': {
      // One component, left running in the background: start redis|temporal|dynamodb
      const component = argv[1];
      const env = process.env;
      const port = (name: string, fallback: number): number => Number(env[name] ?? fallback);
      if (component === 'redis') {
        await startRedis({ dataDir, port: port('TOLLGATE_REDIS_PORT', 6390) });
      } else if (component === 'temporal') {
        await startTemporal({
          dataDir,
          port: port('TOLLGATE_TEMPORAL_PORT', 7243),
          httpPort: port('TOLLGATE_TEMPORAL_HTTP_PORT', 7244),
          uiPort: port('TOLLGATE_TEMPORAL_UI_PORT', 8243),
        });
      } else if (component === 'dynamodb') {
        await startDynamo({ dataDir, port: port('TOLLGATE_DYNAMODB_PORT', 8010) });
      } else {
        console.error('usage: start redis|temporal|dynamodb');
        return 2;
      }
      console.log(`${component} started (pid file in ${join(dataDir, 'pids')})`);
      return 0;
    }
    case 'stop': {
      const component = argv[1];
      const file = join(dataDir, 'pids', `${component ?? ''}.pid`);
      if (component === undefined || !existsSync(file)) {
        console.error(
          `usage: stop <name>; running: ${
            pidFiles(dataDir)
              .map((entry) => entry.name)
              .join(', ') || 'none'
          }`,
        );
        return 2;
      }
      await reapStale(file, EXPECTED_COMMAND[component] ?? (component.startsWith('redis') ? 'redis-server' : component));
      console.log(`stopped ${component}`);
      return 0;
    }
    case 'down': {
      for (const { name, file } of pidFiles(dataDir)) {
        const expect = EXPECTED_COMMAND[name] ?? (name.startsWith('redis') ? 'redis-server' : name);
        await reapStale(file, expect);
        console.log(`stopped ${name}`);
      }
      return 0;
    }
    case 'status': {
      const files = pidFiles(dataDir);
      if (files.length === 0) console.log('nothing started from this checkout');
      for (const { name, file } of files) {
        const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
        const alive = isAlive(pid);
        console.log(`${name.padEnd(24)} pid ${pid} ${alive ? 'running' : 'not running (stale pid file)'}`);
      }
      return 0;
    }
    case 'tables': {
      const endpoint = process.env['DYNAMODB_ENDPOINT'] ?? `http://127.0.0.1:${process.env['TOLLGATE_DYNAMODB_PORT'] ?? '8010'}`;
      const client = localDynamoClient(endpoint, process.env['DYNAMODB_REGION'] ?? 'local');
      try {
        const names = await ensureTables(client, process.env['DYNAMODB_TABLE_PREFIX'] ?? 'tollgate_');
        console.log(`tables ready at ${endpoint}: ${names.join(', ')}`);
      } finally {
        client.destroy();
      }
      return 0;
    }
    case 'cluster': {
      const base = Number(argv[1] ?? '7101');
      const count = Number(argv[2] ?? '3');
      const replicas = Number(argv[3] ?? '0');
      const ports = Array.from({ length: count }, (_, index) => base + index);
      const cluster = await startRedisCluster({ dataDir, ports, replicasPerMaster: replicas });
      console.log(`redis cluster ready: ${cluster.nodes.map((node) => `${node.host}:${node.port}`).join(',')}`);
      return 0;
    }
    default:
      console.error(
        `unknown command '${command}'; use up | down | status | start <component> | stop <name> | tables | cluster [basePort] [nodes] [replicas]`,
      );
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof InfraError ? error.message : error);
    process.exit(1);
  },
);
