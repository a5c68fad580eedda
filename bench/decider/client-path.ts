/**
 * The decider's own client work per decision without I/O (issue 16, client side): `npx tsx bench/decider/client-path.ts`
 * starts a Redis, takes one real decide.lua reply for a batch of 64 (the bench's 3 limits, uniform), then, stage by
 * stage (`npx tsx bench/decider/client-path.ts [rounds] [stage prefix]`), for `rounds` batches: compiles each request;
 * encodes the call as ioredis' `Command` wrote it and as `decide-command.ts` writes it; decodes the same reply into
 * decisions both ways. It prints each stage's CPU per decision and the young-generation collections (scavenges) per
 * 1,000 decisions (of the stage and, except compile, the compile before it): the allocation a change removes shows in
 * that count even on a loaded machine, where CPU time varies by ±20 %. The socket and Redis are not in it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { Command, Redis } from 'ioredis';
import { freePort, startRedis, stopProcess } from '../../infra/services.js';
import { compileRequest } from '../../src/decider/compile.js';
import { compileBatch } from '../../src/decider/decide-args.js';
import { DECIDE_SCRIPT, encodeDecideCall } from '../../src/decider/decide-command.js';
import { toDecision } from '../../src/decider/decider.js';
import { connectDeciderRedis } from '../../src/decider/index.js';
import { decodeDecideBatch, mapDecideBatch } from '../../src/decider/replies.js';
import { SHARDS } from './sides.js';
import { UNIFORM, decideInput } from './workloads.js';

const BATCH = 64;
const ROUNDS = Number(process.argv[2] ?? 4_000);
const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-client-path-'));
const redis = await startRedis({ dataDir, port, name: 'client-path' });
const admin = new Redis({ port });
try {
  const client = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
  const options = { shardCount: SHARDS, localNowMs: Date.now() };
  const inputs = Array.from({ length: BATCH }, (_, i) => decideInput(UNIFORM, i));
  const attempts = inputs.map((_, i) => `attempt0.${i.toString(36)}`);
  const first = inputs.map((input) => compileRequest(input, options));
  const { keys, args } = compileBatch(first, 900_000, attempts);
  const reply = await client.tgDecideBuffer(keys.length, ...keys, ...args);
  client.disconnect();
  const counts = first.map((compiled) => compiled.limitIds.length);
  let compiled = first;
  const stages: Record<string, () => number> = {
    compile: () => {
      compiled = inputs.map((input) => compileRequest(input, options));
      return compiled.length;
    },
    // the command as ioredis' defineCommand wrote it (before 2026-12-06): the packed batch, then every argument formatted
    'encode (ioredis Command)': () => {
      const batch = compileBatch(compiled, 900_000, attempts);
      const written = new Command('evalsha', [DECIDE_SCRIPT.sha, batch.keys.length, ...batch.keys, ...batch.args]).toWritable({});
      return written.length;
    },
    'encode (one buffer)': () => encodeDecideCall({ requests: compiled, defaultRecordTtlMs: 900_000, attempts }).wire.length,
    // each decision decoded into a fresh RawDecision, then mapped (the decider's path before 2026-12-06)
    'decode (decodeDecideBatch)': () => {
      const raws = decodeDecideBatch(reply, counts, attempts);
      let admitted = 0;
      raws.forEach((raw, index) => {
        if (toDecision(raw, compiled[index] as (typeof compiled)[number]).kind === 'allowed') admitted += 1;
      });
      if (admitted !== BATCH) throw new Error(`expected every decision admitted, got ${admitted}`);
      return admitted;
    },
    'decode (mapDecideBatch)': () => {
      const members = compiled.map((request, index) => ({ count: request.limitIds.length, attempt: attempts[index] as string }));
      const decisions = mapDecideBatch(reply, members, (raw, index) => toDecision(raw, compiled[index] as (typeof compiled)[number]));
      const admitted = decisions.filter((decision) => decision.kind === 'allowed').length;
      if (admitted !== BATCH) throw new Error(`expected every decision admitted, got ${admitted}`);
      return admitted;
    },
  };
  const only = process.argv[3];
  for (const [name, stage] of Object.entries(stages)) {
    if (only !== undefined && !name.startsWith(only)) continue;
    const round = (): number => stages['compile']?.() ?? 0;
    for (let i = 0; i < ROUNDS / 4; i += 1) {
      round();
      stage();
    }
    let scavenges = 0;
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries())
        if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges += 1;
    });
    observer.observe({ entryTypes: ['gc'] });
    let cpuUs = 0;
    for (let i = 0; i < ROUNDS; i += 1) {
      if (name !== 'compile') round(); // fresh compiled requests, outside the measure
      const before = process.cpuUsage();
      stage();
      const cpu = process.cpuUsage(before);
      cpuUs += cpu.user + cpu.system;
    }
    await new Promise((settle) => setTimeout(settle, 200)); // the observer's entries arrive after the loop
    observer.disconnect();
    const decisions = ROUNDS * BATCH;
    console.log(
      `${name}: ${(cpuUs / decisions).toFixed(3)} µs CPU per decision, ${((scavenges * 1_000) / decisions).toFixed(3)} scavenges per 1,000 decisions (the stage and, except compile, a compile per round)`,
    );
  }
} finally {
  admin.disconnect();
  await stopProcess(redis);
  rmSync(dataDir, { recursive: true, force: true });
}
