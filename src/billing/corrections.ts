/**
 * Corrections (`correction.v1`): the one path that changes what a tenant is billed after the fact, for
 * the admin API to call. A correction is a debit (units > 0) or a credit (units < 0) of one billing
 * period of the tenant (its account's calendar), with a reason and an author, under an id of the
 * caller's (idempotency).
 *
 * How it stays exact: it is a usage event like any other. One `append-usage` script call appends it to
 * the tenant's shard stream AND moves the tenant's admitted counter of that period by the same units,
 * exactly once per id (the script's marker, kept as long as the counter, 400 days); the pump then
 * ledgers it exactly once (`entry#correction.<id>`, kind `correction.v1`, reason and author on the
 * entry). So the audit (admitted = ledger + in flight) sees no drift at any moment, and the statement of
 * the period reads it from its entries (`byKind['correction.v1']`). Into a finalized period the ledger
 * credits it to the next open period (`lateOf`, the late-event path): the final statement stays as
 * issued, the next statement carries it as late units, and the audit still counts it in its own period.
 *
 * A retried correction with the same id is the first one, whatever it says (nothing moves again).
 */
import { ADMITTED_TTL_MS, appendUsage, periodAt, type DeciderRedis, type PeriodSpec } from '../decider/index.js';
import { correctionTextProblem } from '../metering/index.js';
import { NotFoundError, ValidationError, parseEventId, parseTenantId, type EventId, type TenantId } from '../shared/index.js';
import type { AccountStore } from './accounts.js';

/** The id grammar of a correction (the event id is `correction.<id>`). */
const CORRECTION_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface CorrectionInput {
  /** The caller's id of this correction: a retry with the same id is one correction. */
  id: string;
  tenant: string;
  /** An instant in the period to correct, epoch ms: the tenant's billing period holding it is corrected. */
  atMs: number;
  /** Signed cost units: > 0 a debit (billed more), < 0 a credit. Never 0. */
  units: number;
  /** Why (1..500 characters, shown on the ledger entry). */
  reason: string;
  /** Who (1..128 characters: an admin's name or token id). */
  author: string;
  /** The billing period of a tenant without an account (its plan's). Without either: NOT_FOUND. */
  defaultPeriod?: PeriodSpec;
}

export interface CorrectionResult {
  /** The ledger entry's event id, `correction.<id>`. */
  eventId: EventId;
  /** Start of the corrected billing period, ISO-8601 UTC (the ledger partition, unless it was finalized). */
  periodStart: string;
  /** False when a correction with this id was already made: nothing moved now. */
  isNew: boolean;
}

export interface CorrectionDeps {
  redis: DeciderRedis;
  /** DECIDER_SHARDS. */
  shardCount: number;
  accounts: AccountStore;
}

function checked(input: CorrectionInput): { tenant: TenantId; eventId: EventId } {
  const problems: string[] = [];
  let tenant: TenantId | undefined;
  try {
    tenant = parseTenantId(input.tenant);
  } catch {
    problems.push('tenant is not a tenant id');
  }
  if (typeof input.id !== 'string' || !CORRECTION_ID.test(input.id)) problems.push('id must be 1-64 characters of a-z, 0-9, "_", "-"');
  if (!Number.isSafeInteger(input.units) || input.units === 0) problems.push('units must be a non-zero safe integer');
  if (!Number.isSafeInteger(input.atMs) || input.atMs < 0) problems.push('atMs must be an epoch ms');
  for (const name of ['reason', 'author'] as const) {
    const problem = correctionTextProblem(name, input[name]);
    if (problem !== undefined) problems.push(problem);
  }
  if (problems.length > 0 || tenant === undefined) {
    throw new ValidationError('INVALID_INPUT', `invalid correction:\n${problems.join('\n')}`, { details: { problems } });
  }
  return { tenant, eventId: parseEventId(`correction.${input.id}`) };
}

/**
 * Makes a correction (see the file header): appended and counted once, ledgered by the pump.
 * @throws ValidationError `INVALID_INPUT` listing every problem (nothing written)
 * @throws NotFoundError when the tenant has no account and no `defaultPeriod` was given
 * @throws DependencyError `REDIS_UNAVAILABLE` / `DYNAMODB_UNAVAILABLE` (a retry with the same id is safe)
 */
export async function applyCorrection(deps: CorrectionDeps, input: CorrectionInput): Promise<CorrectionResult> {
  const { tenant, eventId } = checked(input);
  const billingPeriod = (await deps.accounts.get(tenant))?.billingPeriod ?? input.defaultPeriod;
  if (billingPeriod === undefined) {
    throw new NotFoundError(`tenant ${tenant} has no account, and no default billing period was given`, { details: { tenant } });
  }
  const periodStartMs = periodAt(billingPeriod, input.atMs).startMs;
  const appended = await appendUsage(deps.redis, {
    tenant,
    eventId,
    shardCount: deps.shardCount,
    fields: {
      type: 'correction.v1',
      id: eventId,
      tenant,
      key: 'correction',
      op: 'correction',
      pv: '0',
      bp: String(periodStartMs),
      amount: String(input.units),
      reason: input.reason,
      author: input.author,
    },
    admitted: { periodStartMs, delta: input.units },
    // recognised as long as the counter it moved lives: a retry never moves it twice
    dedupeTtlMs: ADMITTED_TTL_MS,
  });
  return { eventId, periodStart: new Date(periodStartMs).toISOString(), isNew: appended.isNew };
}
