/**
 * The pump of a shard as tests see it: its workflow id (`meter/<first>-<last>`,
 * from the shards a test ensured and their grouping) and its state.
 */
import type { Client } from '@temporalio/client';
import { meterPumpGroups, meterPumpId } from '../../src/workflows/index.js';
import { meterPumpStateQuery, type MeterState } from '../../src/workflows/workflows/index.js';

/** The id of the pump that owns `shard` when `ensured` were ensured with `shardsPerPump`. @throws when none does */
export function pumpIdOf(shard: number, ensured: readonly number[] = [shard], shardsPerPump = 1): string {
  const group = meterPumpGroups(ensured, shardsPerPump).find((shards) => shards.includes(shard));
  if (group === undefined) throw new Error(`shard ${shard} is not among the ensured shards`);
  return meterPumpId(group[0] ?? shard, group.at(-1));
}

/** The cursor and counters of `shard` in its pump. @throws when the pump does not answer or has no such shard */
export async function pumpStateOf(client: Client, shard: number, ensured?: readonly number[], shardsPerPump?: number): Promise<MeterState> {
  const states = await client.workflow.getHandle(pumpIdOf(shard, ensured, shardsPerPump)).query(meterPumpStateQuery);
  const state = states[String(shard)];
  if (state === undefined) throw new Error(`the pump of shard ${shard} holds no state for it`);
  return state;
}
