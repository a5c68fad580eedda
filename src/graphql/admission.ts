/**
 * Admission control of one API instance (DESIGN §8a): a bound on the GraphQL
 * requests it works on at once, so a busy process sheds load instead of
 * queueing it in front of Redis (where waiting in the event loop looks like a
 * slow Redis and trips the decider's breaker). A request is admitted while
 * fewer requests than its criticality's bound are in flight, else shed with
 * 503 `OVERLOADED`; sheddable work has the lowest bound, critical the highest.
 * Shedding happens right after identification, before the body is parsed,
 * priced or decided, and never admits anything past the tenant's limits: a
 * shed request simply never reaches the decider. `Admission` is pure (no
 * I/O, no clock); `admitRequest` applies it to a yoga request.
 */
import type { GraphQLError } from 'graphql';
import type { TollgateMetrics } from './metrics.js';
import type { EdgeErrorCode } from './responses.js';

/** How readily a request is shed under load (a plan's `criticality`), last shed first. */
export const CRITICALITIES = ['critical', 'default', 'sheddable'] as const;

export type Criticality = (typeof CRITICALITIES)[number];

/** In-flight requests above which each criticality is shed: `sheddable <= default <= critical`. */
export type InFlightBounds = Record<Criticality, number>;

/** An admitted request's slot; `release` is idempotent (the first call frees the slot). */
export interface AdmissionLease {
  release(): void;
}

/** The in-flight count of one instance and its bounds. */
export class Admission {
  private inFlight = 0;

  /** @throws RangeError unless `1 <= sheddable <= default <= critical`, all integers */
  constructor(readonly bounds: InFlightBounds) {
    const { critical, sheddable } = bounds;
    const isOrdered = Number.isSafeInteger(sheddable) && sheddable >= 1 && sheddable <= bounds.default && bounds.default <= critical;
    if (!isOrdered || !Number.isSafeInteger(bounds.default) || !Number.isSafeInteger(critical)) {
      throw new RangeError(`in-flight bounds must be integers with 1 <= sheddable <= default <= critical, got ${JSON.stringify(bounds)}`);
    }
  }

  /** Requests admitted and not yet released. */
  get current(): number {
    return this.inFlight;
  }

  /** Takes a slot when fewer than the criticality's bound are in flight; undefined when the request is to be shed. */
  tryAdmit(criticality: Criticality): AdmissionLease | undefined {
    if (this.inFlight >= this.bounds[criticality]) return undefined;
    this.inFlight += 1;
    let isReleased = false;
    return {
      release: () => {
        if (isReleased) return;
        isReleased = true;
        this.inFlight -= 1;
      },
    };
  }
}

/**
 * A request's in-flight slot (undefined without admission control), to be released with its
 * response; on a Node server it is also released when the connection closes, so no slot outlives
 * its request even when no response is built.
 * @throws the 503 `OVERLOADED` refusal (`Retry-After: 1`) when the criticality's bound is reached
 */
export function admitRequest(input: {
  admission?: Admission;
  metrics?: TollgateMetrics;
  /** The plan's criticality. @default 'default' */
  criticality: Criticality | undefined;
  serverContext: Record<string, unknown>;
  refuse: (refusal: { code: EdgeErrorCode; message: string; status: number; headers: Record<string, string> }) => GraphQLError;
}): AdmissionLease | undefined {
  const { admission, metrics } = input;
  if (admission === undefined) return undefined;
  const criticality = input.criticality ?? 'default';
  const lease = admission.tryAdmit(criticality);
  if (lease === undefined) {
    metrics?.shed.inc({ criticality, reason: 'in-flight' });
    const message = 'this API instance is overloaded; retry later';
    throw input.refuse({ code: 'OVERLOADED', message, status: 503, headers: { 'Retry-After': '1' } });
  }
  const res = input.serverContext['res'];
  if (isClosable(res)) res.once('close', () => lease.release());
  return lease;
}

function isClosable(value: unknown): value is { once(event: 'close', listener: () => void): unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { once?: unknown }).once === 'function';
}
