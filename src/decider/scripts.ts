/**
 * Script registry. Each `lua/*.lua` file is read once at startup and
 * registered with `defineCommand`, so ioredis runs it by SHA (EVALSHA) and
 * falls back to EVAL on NOSCRIPT by itself (after SCRIPT FLUSH, a restart or a
 * failover). No SHA is kept by hand and no Lua lives in a TS string.
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis, Result } from 'ioredis';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    tgAppendUsage(...keysAndArgs: (string | number)[]): Result<unknown, Context>;
    tgClock(): Result<unknown, Context>;
    /** Variable key count: `tgDecide(numberOfKeys, ...keys, ...args)`. */
    tgDecide(numberOfKeys: number, ...keysAndArgs: (string | Buffer)[]): Result<unknown, Context>;
    /** `tgDecide` with its reply as buffers (decide.lua answers packed decisions: binary). */
    tgDecideBuffer(numberOfKeys: number, ...keysAndArgs: (string | Buffer)[]): Result<unknown, Context>;
    tgSettle(numberOfKeys: number, ...keysAndArgs: string[]): Result<unknown, Context>;
    tgHeartbeat(...keysAndArgs: (string | number)[]): Result<unknown, Context>;
  }
}

/** Scripts, by the command name they are registered under. */
export const SCRIPTS = {
  tgAppendUsage: { file: 'append-usage.lua', numberOfKeys: 4 },
  tgClock: { file: 'clock.lua', numberOfKeys: 0 },
  tgDecide: { file: 'decide.lua', numberOfKeys: undefined },
  tgSettle: { file: 'settle.lua', numberOfKeys: undefined },
  tgHeartbeat: { file: 'instances.lua', numberOfKeys: 1 },
} as const;

/** The folder holding the Lua sources (`<repo>/lua`, or `dist/lua` after a build). */
export const LUA_DIR = new URL('../../lua/', import.meta.url);

/** Reads one script's source. */
export function readScript(file: string): string {
  return readFileSync(new URL(file, LUA_DIR), 'utf8');
}

/** Registers every script on a client (single node or cluster). Idempotent. */
export function registerScripts(client: Redis | Cluster): void {
  for (const [name, script] of Object.entries(SCRIPTS)) {
    const lua = readScript(script.file);
    client.defineCommand(name, script.numberOfKeys === undefined ? { lua } : { numberOfKeys: script.numberOfKeys, lua });
  }
}
