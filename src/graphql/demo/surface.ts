/** The demo as what `/graphql` serves (`createApi`'s `surface`): its schema, resolved by its own resolvers. */
import { probeDecider, type DeciderRedis } from '../../decider/index.js';
import type { JobReader } from '../../jobs/index.js';
import { systemClock, type Clock } from '../../shared/index.js';
import type { ApiSurface } from '../app.js';
import type { DemoStore } from './data.js';
import { createDemoSchema } from './schema.js';

/** The demo schema over `store`, its `status` field reading Redis's clock, its `job(id)` field `jobs`. */
export function demoSurface(input: {
  store: DemoStore;
  version: string;
  redis: DeciderRedis;
  clock?: Clock;
  jobs?: JobReader;
}): ApiSurface {
  return {
    schema: createDemoSchema({
      store: input.store,
      version: input.version,
      deciderTimeMs: async () => (await probeDecider(input.redis)).nowMs,
      clock: input.clock ?? systemClock,
      ...(input.jobs === undefined ? {} : { jobs: input.jobs }),
    }),
    plugins: [],
    readiness: [],
  };
}
