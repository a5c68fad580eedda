/**
 * What the tenant usage API answers, for one authenticated tenant (its key's tenant: never an
 * argument). Reads only: the limits through the decider's read-only peek (no unit spent), the
 * period and statements from the ledger and the account, receipts by the tenant-scoped ledger key.
 */
import { peekLimits, periodAt, type DeciderRedis, type LimitSpec, type PeekedLimit, type PeriodSpec } from '../../decider/index.js';
import {
  priceUsage,
  type AccountStore,
  type DynamoPeriodStore,
  type DynamoWarningReader,
  type PriceBreakdown,
  type Statement,
} from '../../billing/index.js';
import type { DynamoUsageReader, ReceiptEntry } from '../../metering/index.js';
import { DependencyError, parseEventId, type Clock, type EventId } from '../../shared/index.js';
import type { Identity } from '../identity/identify.js';
import type { Plan } from '../plans.js';
import { readDenials, type DenialsView } from './activity.js';
import type { DynamoJobList, JobListPage } from './jobs-list.js';
import type { DynamoReceiptSearch, Receipt, ReceiptPage } from './receipt-search.js';

export type { Receipt } from './receipt-search.js';
import { seriesOf, type SeriesInput, type SeriesPoint } from './series.js';

export interface UsageServiceDeps {
  redis: DeciderRedis;
  shardCount: number;
  accounts: AccountStore;
  periods: DynamoPeriodStore;
  warnings: DynamoWarningReader;
  reader: DynamoUsageReader;
  clock: Clock;
  /** The tenant's deferred jobs, newest first (absent: `jobs` fails). */
  jobs?: DynamoJobList;
  /** Receipts by event time (absent: `receipts` fails). */
  receiptSearch?: DynamoReceiptSearch;
}

/** The tenant and plan a usage call is answered for (from its API key). */
export interface UsageCaller {
  identity: Identity;
  plan: Plan;
}

export interface LimitUsage extends PeekedLimit {
  /** Period quotas: the thresholds (percent) of the plan and those the current period has reached. */
  thresholdsPercent: number[];
  reachedPercents: number[];
}

export interface PeriodView {
  startMs: number;
  endMs: number;
  /** Units admitted in the period so far (the decider's counter: admitted, not yet all in the ledger). */
  usedUnits: number;
  includedUnits: number | null;
  /** `usedUnits` extended linearly to the period's end (integer, rounded down). */
  projectedUnits: number;
  /** The account's price applied to `projectedUnits`; null without an account. */
  projectedBill: PriceBreakdown | null;
}

export interface UsageView {
  nowMs: number;
  limits: LimitUsage[];
  period: PeriodView;
  warnings: { limitId: string; percent: number; status: string; createdAtMs: number }[];
  /** Requests denied, by limit (counted by the API processes, flushed each second) and the last few. */
  denials: DenialsView;
}

/** How many billing periods back a receipt is looked for (a year of monthly periods). */
const RECEIPT_PERIODS = 13;

/** Linear projection of `used` units at `elapsedMs` of a `lengthMs` period, exact (BigInt), rounded down. */
export function projectUnits(used: number, elapsedMs: number, lengthMs: number): number {
  if (elapsedMs <= 0 || used <= 0) return Math.max(0, used);
  if (elapsedMs >= lengthMs) return used;
  const projected = (BigInt(used) * BigInt(lengthMs)) / BigInt(elapsedMs);
  return projected > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(projected);
}

/** The ISO starts of the period containing `nowMs` and the `count − 1` before it, newest first. */
export function recentPeriodStarts(spec: PeriodSpec, nowMs: number, count: number): { startMs: number; endMs: number }[] {
  const periods = [periodAt(spec, nowMs)];
  while (periods.length < count) {
    const last = periods.at(-1) as { startMs: number };
    periods.push(periodAt(spec, last.startMs - 1));
  }
  return periods;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function thresholdsOf(spec: LimitSpec | undefined): number[] {
  return spec?.algorithm.kind === 'period-quota' ? [...spec.algorithm.thresholdsPercent] : [];
}

export class UsageService {
  constructor(private readonly deps: UsageServiceDeps) {}

  /** Limits (peeked: nothing spent), the current period and its projection, warnings recorded. */
  async usage(caller: UsageCaller): Promise<UsageView> {
    const { identity, plan } = caller;
    // every read at once (one round trip, not two): the warnings of the period the local clock is in, read again
    // in the rare case Redis's clock (the peek's) is already in another period
    const localPeriodStartMs = periodAt(plan.billingPeriod, this.deps.clock.nowMs()).startMs;
    const warningsOf = (startMs: number): ReturnType<DynamoWarningReader['list']> =>
      this.deps.warnings.list({ tenant: identity.tenant, periodStart: iso(startMs) });
    const [peek, account, localWarnings, denials] = await Promise.all([
      peekLimits(
        this.deps.redis,
        {
          tenant: identity.tenant,
          keyId: identity.keyId,
          limits: plan.limits,
          billingPeriod: plan.billingPeriod,
          policyVersion: plan.version,
          ...(plan.subShards === undefined ? {} : { subShards: plan.subShards }),
          ...(identity.clientIp === undefined ? {} : { clientIp: identity.clientIp }),
        },
        { shardCount: this.deps.shardCount, localNowMs: this.deps.clock.nowMs() },
      ),
      this.deps.accounts.get(identity.tenant),
      warningsOf(localPeriodStartMs),
      readDenials(this.deps.redis, identity.tenant, this.deps.clock.nowMs()),
    ]);
    const warnings = peek.billingStartMs === localPeriodStartMs ? localWarnings : await warningsOf(peek.billingStartMs);
    const lengthMs = peek.billingEndMs - peek.billingStartMs;
    const projectedUnits = projectUnits(peek.admittedUnits, peek.nowMs - peek.billingStartMs, lengthMs);
    return {
      nowMs: peek.nowMs,
      limits: peek.limits.map((limit) => {
        const thresholdsPercent = thresholdsOf(plan.limits.find((spec) => spec.id === limit.id));
        const used = limit.usedUnits ?? 0;
        const whole = limit.limitUnits ?? 0;
        return { ...limit, thresholdsPercent, reachedPercents: thresholdsPercent.filter((pct) => whole > 0 && used * 100 >= pct * whole) };
      }),
      period: {
        startMs: peek.billingStartMs,
        endMs: peek.billingEndMs,
        usedUnits: peek.admittedUnits,
        includedUnits: account?.price.includedUnits ?? null,
        projectedUnits,
        projectedBill: account === undefined ? null : priceUsage(account.price, projectedUnits),
      },
      warnings: warnings.map((warning) => ({
        limitId: warning.limitId,
        percent: warning.percent,
        status: warning.status,
        createdAtMs: warning.createdAtMs,
      })),
      denials,
    };
  }

  /** The ledger entry behind a receipt id, or null: unknown, malformed, not yet ledgered, or another tenant's. */
  async receipt(caller: UsageCaller, rawId: string): Promise<Receipt | null> {
    let id: EventId;
    try {
      id = parseEventId(rawId);
    } catch {
      return null;
    }
    if (id.endsWith('.settled')) return null;
    const periods = recentPeriodStarts(caller.plan.billingPeriod, this.deps.clock.nowMs(), RECEIPT_PERIODS);
    const found = await this.deps.reader.entries({
      tenant: caller.identity.tenant,
      periodStarts: periods.map((period) => iso(period.startMs)),
      eventIds: [id, `${id}.settled`],
    });
    const main = found.find((entry) => entry.eventId === id && entry.kind !== 'usage.settled.v1');
    if (main === undefined) return null;
    const settled: ReceiptEntry | undefined = found.find((entry) => entry.eventId === `${id}.settled`);
    return {
      id,
      kind: main.kind,
      operation: main.operation,
      units: main.amount + (settled?.amount ?? 0),
      reservedUnits: main.amount,
      atMs: main.atMs,
      periodStart: main.periodStart,
      lateOf: main.lateOf,
      settlement: settled === undefined ? null : { units: settled.amount, atMs: settled.atMs },
    };
  }

  /** The statements of the last `last` closed periods (1..24), newest first; periods without one are left out. */
  async statements(caller: UsageCaller, last: number): Promise<Statement[]> {
    const periods = recentPeriodStarts(caller.plan.billingPeriod, this.deps.clock.nowMs(), last + 1).slice(1);
    const statements = await Promise.all(
      periods.map((period) => this.deps.periods.getStatement({ tenant: caller.identity.tenant, periodStart: iso(period.startMs) })),
    );
    return statements.filter((statement): statement is Statement => statement !== undefined);
  }

  /** The ledger's units per hour or day, by operation or by limit (validated by `seriesOf`). */
  async series(caller: UsageCaller, input: SeriesInput): Promise<SeriesPoint[]> {
    return seriesOf(input, caller.plan.limits, (range) => this.deps.reader.hours({ tenant: caller.identity.tenant, ...range }));
  }

  /** The caller's deferred jobs, newest first. @throws ValidationError, DependencyError */
  async jobs(caller: UsageCaller, page: { first: number; after: string | null }): Promise<JobListPage> {
    if (this.deps.jobs === undefined) throw new DependencyError('DEPENDENCY_FAILED', 'job listing is not wired in this process');
    return this.deps.jobs.list({ tenant: caller.identity.tenant, ...page });
  }

  /** The caller's receipts with event time in [fromMs, toMs), newest first. @throws ValidationError, DependencyError */
  async receipts(caller: UsageCaller, input: { fromMs: number; toMs: number; first: number; after: string | null }): Promise<ReceiptPage> {
    if (this.deps.receiptSearch === undefined)
      throw new DependencyError('DEPENDENCY_FAILED', 'receipt search is not wired in this process');
    return this.deps.receiptSearch.search({ tenant: caller.identity.tenant, billingPeriod: caller.plan.billingPeriod, ...input });
  }
}
