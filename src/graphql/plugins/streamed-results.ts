/**
 * Streamed results through the gate (`useTollgate`): incremental delivery
 * (`@defer`/`@stream`, one operation, several payloads) and subscriptions
 * (one operation, one event per payload).
 *
 * Incremental delivery is charged as any operation: its price is reserved
 * before the first payload; once the last payload (`hasNext: false`) is
 * through, the actual cost is measured on the whole response (every payload
 * merged) and settled, and the last payload carries `extensions.cost`. A
 * client that goes away before the end keeps the whole reservation charged.
 *
 * A subscription is charged per event delivered: subscribing reserves the
 * price of one event (the operation's price) and the first event settles it
 * to that event's actual cost; every later event is decided (priced the same,
 * a usage event of its own) before it is delivered and settled after it. An
 * event the limits refuse ends the subscription with the refusal as its last
 * payload. A subscription that ends before its first event is settled to the
 * minimum cost.
 */
import type { ExecutionResult } from 'graphql';
import type { EdgeResponse } from '../decision-response.js';
import type { AdmittedOperation, GateOutcome, OperationGate } from '../operation-gate.js';

/** A payload of incremental delivery (graphql-js / yoga format: `incremental` items after the initial result). */
interface IncrementalPayload extends ExecutionResult {
  hasNext?: boolean;
  incremental?: ReadonlyArray<{ data?: Record<string, unknown> | null; items?: readonly unknown[]; path?: ReadonlyArray<string | number> }>;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Writes `source`'s fields into `target`, objects merged field by field. */
function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isRecord(existing) && isRecord(value)) deepMerge(existing, value);
    else target[key] = value;
  }
}

/** The value at `path` in `data`, undefined when the path leads nowhere. */
function valueAt(data: unknown, path: ReadonlyArray<string | number>): unknown {
  let node = data;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number') node = node[segment];
    else if (isRecord(node) && typeof segment === 'string') node = node[segment];
    else return undefined;
  }
  return node;
}

/** Merges one incremental-delivery payload into `whole` (the response as if it had been sent at once). */
export function mergeIncremental(whole: { data?: Record<string, unknown> | null }, payload: IncrementalPayload): void {
  if (payload.data !== undefined) {
    if (isRecord(whole.data) && isRecord(payload.data)) deepMerge(whole.data, payload.data);
    else whole.data = payload.data === null ? null : structuredClone(payload.data);
  }
  for (const item of payload.incremental ?? []) {
    const path = item.path ?? [];
    if (item.items !== undefined) {
      // a @stream payload: items appended to the list the path's parent names
      const list = valueAt(whole.data, path.slice(0, -1));
      if (Array.isArray(list)) list.push(...item.items);
    } else if (isRecord(item.data)) {
      const target = valueAt(whole.data, path);
      if (isRecord(target)) deepMerge(target, item.data);
    }
  }
}

/** The stream with its settlement: see the file header. */
export async function* meterIncremental(input: {
  gate: OperationGate;
  operation: AdmittedOperation;
  stream: AsyncIterable<ExecutionResult>;
  /** The client's request signal: aborted when the client went away. */
  signal: AbortSignal | undefined;
}): AsyncGenerator<ExecutionResult> {
  const { gate, operation } = input;
  const isGone = (): boolean => input.signal?.aborted === true;
  const whole: { data?: Record<string, unknown> | null } = {};
  const errors: NonNullable<ExecutionResult['errors']>[number][] = [];
  let isSettled = false;
  try {
    for await (const payload of input.stream as AsyncIterable<IncrementalPayload>) {
      mergeIncremental(whole, payload);
      errors.push(...(payload.errors ?? []), ...(payload.incremental ?? []).flatMap((item) => (item as ExecutionResult).errors ?? []));
      if (payload.hasNext === true) {
        yield payload;
        continue;
      }
      isSettled = true;
      const measured = { data: whole.data ?? null, ...(errors.length > 0 ? { errors } : {}) };
      const done = await gate.finish(operation, measured, { keepsReservation: isGone() });
      yield { ...payload, extensions: { ...payload.extensions, cost: done.result.extensions?.['cost'] } };
      return;
    }
  } finally {
    // the client went away, or the upstream ended without a last payload: the reservation stays charged
    if (!isSettled) await gate.finish(operation, { data: whole.data ?? null }, { keepsReservation: true }).catch(() => undefined);
  }
}

/** The subscription's events, each decided and settled: see the file header. */
export async function* meterSubscription(input: {
  gate: OperationGate;
  first: AdmittedOperation;
  /** Decides one more event (no Idempotency-Key: each event is a usage event of its own). */
  reopen: () => Promise<GateOutcome>;
  send: (response: EdgeResponse) => ExecutionResult;
  stream: AsyncIterable<ExecutionResult> | Iterable<ExecutionResult>;
  /** The client's request signal: no event is decided or charged once the client went away. */
  signal: AbortSignal | undefined;
}): AsyncGenerator<ExecutionResult> {
  const { gate } = input;
  let operation: AdmittedOperation | undefined = input.first;
  let isFirstUnused = true;
  try {
    for await (const event of input.stream) {
      if (input.signal?.aborted === true) return;
      if (operation === undefined) {
        const outcome = await input.reopen();
        if (outcome.kind === 'answered') {
          yield input.send(outcome.response);
          return;
        }
        operation = outcome.operation;
      }
      isFirstUnused = false;
      const done = await gate.finish(operation, event);
      operation = undefined;
      yield done.result;
    }
  } finally {
    // subscribed, but not one event came: the subscription costs its minimum
    if (isFirstUnused) await gate.finish(input.first, { data: null }).catch(() => undefined);
  }
}

/** Whether a result is a stream of payloads rather than one result. */
export function isStream(result: unknown): result is AsyncIterable<ExecutionResult> {
  return typeof result === 'object' && result !== null && Symbol.asyncIterator in result;
}
