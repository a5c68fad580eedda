/**
 * Closing what a test file opened (STYLE §9: every client is closed in
 * `afterAll`; a hanging process fails CI). `closeAll` closes each client the
 * way its kind closes, every one even when an earlier one fails, and then
 * throws the failures together.
 */
import { afterAll } from 'vitest';

/** Something a test opened: a client of one of the kinds below, or how to close it. */
export type Closable =
  | { disconnect(): unknown } // ioredis Redis and Cluster
  | { destroy(): unknown } // AWS SDK clients
  | { teardown(): Promise<unknown> } // Temporal TestWorkflowEnvironment
  | { close(): unknown } // Temporal Connection and NativeConnection, our servers and receivers
  | (() => unknown);

function closeOne(resource: Closable): unknown {
  if (typeof resource === 'function') return resource();
  if ('disconnect' in resource) return resource.disconnect();
  if ('destroy' in resource) return resource.destroy();
  if ('teardown' in resource) return resource.teardown();
  return resource.close();
}

/**
 * Closes each resource in order (`undefined` ones were never opened: skipped),
 * waiting for each, and goes on past a failure.
 * @throws AggregateError of every failure, after all were tried
 */
export async function closeAll(...resources: (Closable | undefined)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const resource of resources) {
    if (resource === undefined) continue;
    try {
      await closeOne(resource);
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw new AggregateError(failures, `${failures.length} of ${resources.length} resources failed to close`);
}

/**
 * Registers an `afterAll` of the calling file that closes what `resources`
 * returns then (clients are usually opened in `beforeAll`, after this runs).
 */
export function closeAfterAll(resources: () => (Closable | undefined)[], timeoutMs?: number): void {
  afterAll(() => closeAll(...resources()), timeoutMs);
}
