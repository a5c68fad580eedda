/**
 * A yoga app with the demo schema and `useTollgate`, over a given decider,
 * for HTTP tests (`yoga.fetch` in-process), and a Decider wrapper that counts
 * calls (a fake of our own port, wrapping the real Redis decider).
 */
import { createYoga } from 'graphql-yoga';
import type { DecideInput, Decider, Decision, LimitSpec, SettleInput, SettleResult } from '../../src/decider/index.js';
import {
  InMemoryKeyStore,
  InMemoryPlanStore,
  TollgateMetrics,
  useMetricsEndpoint,
  useTollgate,
  type AnonymousPolicy,
  type KeyStore,
  type Plan,
  type PlanStore,
  type TollgateContext,
  type TollgateOptions,
} from '../../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../../src/graphql/demo/index.js';
import { InMemoryDeferrer, type Deferrer } from '../../src/jobs/index.js';
import { createLogger, parseLimitId, parsePlanId, systemClock } from '../../src/shared/index.js';
import { MONTH } from './time.js';

export class CountingDecider implements Decider {
  decides: DecideInput[] = [];
  settles: SettleInput[] = [];
  constructor(private readonly inner: Decider) {}
  decide(input: DecideInput): Promise<Decision> {
    this.decides.push(input);
    return this.inner.decide(input);
  }
  settle(input: SettleInput): Promise<SettleResult> {
    this.settles.push(input);
    return this.inner.settle(input);
  }
}

export { MONTH };

/** A token bucket that refills 1 unit per hour: nothing refills during a test. */
export function slowBucket(capacity: number, extra: Partial<LimitSpec> = {}): LimitSpec {
  return {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity, refillAmount: 1, refillPeriodMs: 3_600_000 },
    mode: 'hard',
    onDeciderDown: 'open',
    ...extra,
  };
}

export function quota(id: string, limit: number, extra: Partial<LimitSpec> = {}, thresholdsPercent: number[] = []): LimitSpec {
  return {
    id: parseLimitId(id),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent },
    mode: 'hard',
    onDeciderDown: 'open',
    ...extra,
  };
}

export function plan(id: string, limits: LimitSpec[], maxCostPerOperation = 10_000): Plan {
  return { id: parsePlanId(id), version: 1, billingPeriod: MONTH, maxCostPerOperation, limits };
}

export interface TestApp {
  yoga: ReturnType<typeof createYoga<object, TollgateContext>>;
  store: DemoStore;
  keyStore: InMemoryKeyStore;
  plans: InMemoryPlanStore;
  deferrer: InMemoryDeferrer;
  metrics: TollgateMetrics;
  /** A fresh key of `tenant` on `planId`. */
  keyFor(tenant: string, planId: string, keyId?: string): string;
  /** POST /graphql with a key (or none) and extra headers. */
  post(body: unknown, input?: { key?: string | null; headers?: Record<string, string> }): Promise<Response>;
}

export function testApp(input: {
  decider: Decider;
  plans: Plan[];
  anonymous?: AnonymousPolicy;
  tollgate?: Partial<TollgateOptions>;
  serverContext?: Record<string, unknown>;
  /** @default the app's InMemoryDeferrer */
  deferrer?: Deferrer;
  /** Plans and keys from elsewhere (e.g. a LiveConfig); @default the app's in-memory stores */
  config?: KeyStore & PlanStore;
}): TestApp {
  const store = new DemoStore();
  const keyStore = new InMemoryKeyStore();
  const plans = new InMemoryPlanStore(input.plans);
  const deferrer = new InMemoryDeferrer();
  const metrics = new TollgateMetrics();
  const yoga = createYoga<object, TollgateContext>({
    schema: createDemoSchema({ store, version: 'test', deciderTimeMs: () => Promise.resolve(0), clock: systemClock }),
    batching: { limit: 50 },
    maskedErrors: true,
    logging: false,
    plugins: [
      useMetricsEndpoint({ registry: metrics.registry }),
      useTollgate({
        random: () => 0.5,
        ...input.tollgate,
        decider: input.decider,
        keyStore: input.config ?? keyStore,
        plans: input.config ?? plans,
        deferrer: input.deferrer ?? deferrer,
        metrics,
        logger: createLogger({ level: 'silent', name: 'test' }),
        ...(input.anonymous === undefined ? {} : { anonymous: input.anonymous }),
      }),
    ],
  });
  return {
    yoga,
    store,
    keyStore,
    plans,
    deferrer,
    metrics,
    keyFor: (tenant, planId, keyId = 'k1') => keyStore.add({ tenant, keyId, planId }).key,
    post: async (body, options = {}) =>
      await yoga.fetch(
        'http://tollgate.test/graphql',
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(options.key === undefined || options.key === null ? {} : { authorization: `Bearer ${options.key}` }),
            ...options.headers,
          },
          body: typeof body === 'string' ? body : JSON.stringify(body),
        },
        input.serverContext ?? {},
      ),
  };
}

/** The parsed body of a GraphQL response. */
export interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
  extensions?: {
    cost?: {
      requested: number;
      actual: number | null;
      refunded: number;
      throttleStatus: { maximumAvailable: number; currentlyAvailable: number; restoreRate: number } | null;
      limits: { id: string; mode: string; remaining: number; resetMs: number; isExceeded: boolean }[];
      receipt: string | null;
      degraded?: string;
      isReplay?: boolean;
    };
    quota?: { warnings: Record<string, unknown>[] };
    job?: { id: string; status: string; etaMs: number | null };
  };
}

export async function bodyOf(response: Response): Promise<GraphQLBody> {
  return (await response.json()) as GraphQLBody;
}

export const codeOf = (body: GraphQLBody): unknown => body.errors?.[0]?.extensions?.['code'];
