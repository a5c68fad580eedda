/**
 * Runs the GraphQL benchmark alone: `npx tsx bench/graphql-main.ts`
 * (BENCH_DURATION_MS sets each phase's length, default 8000). Starts a Redis
 * of its own and prints the figures and the Markdown lines.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedis, stopProcess } from '../infra/services.js';
import { benchGraphql } from './graphql.js';

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-graphql-'));
  const port = await freePort();
  const redis = await startRedis({ dataDir, port, appendfsync: 'everysec' });
  try {
    const { figures, lines } = await benchGraphql({ redisPort: port, durationMs: Number(process.env['BENCH_DURATION_MS'] ?? 8_000) });
    console.log(lines.join('\n'));
    for (const figure of figures) console.log(`${figure.name.padEnd(34)} ${figure.value.toFixed(3)} ${figure.unit}  (${figure.note})`);
  } finally {
    await stopProcess(redis);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
