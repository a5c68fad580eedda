/**
 * Branded ids. Each is made only by its parser, which checks the shape, so an
 * id can be placed inside a Redis key or a DynamoDB key without escaping and no
 * separator (`:`, `{`, `}`, `#`, `/`) can ever collide.
 */
import { ValidationError } from './errors.js';

type Brand<T, B extends string> = T & { readonly __brand: B };

export type TenantId = Brand<string, 'TenantId'>;
export type KeyId = Brand<string, 'KeyId'>;
export type LimitId = Brand<string, 'LimitId'>;
export type PlanId = Brand<string, 'PlanId'>;
export type EventId = Brand<string, 'EventId'>;

/** Lowercase ascii, digits, `_` and `-`, starting with a letter or digit, at most 64 chars. */
const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Event ids are longer (they embed a request id) but use the same alphabet plus `.`. */
const EVENT_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;

function parse<T>(kind: string, pattern: RegExp, raw: unknown): T {
  if (typeof raw !== 'string' || !pattern.test(raw)) {
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 80)) : typeof raw;
    throw new ValidationError('INVALID_ID', `invalid ${kind}: ${shown} does not match ${pattern.source}`, {
      details: { kind },
    });
  }
  return raw as T;
}

/** @throws ValidationError `INVALID_ID` */
export const parseTenantId = (raw: unknown): TenantId => parse<TenantId>('tenant id', ID_PATTERN, raw);
/** @throws ValidationError `INVALID_ID` */
export const parseKeyId = (raw: unknown): KeyId => parse<KeyId>('key id', ID_PATTERN, raw);
/** @throws ValidationError `INVALID_ID` */
export const parseLimitId = (raw: unknown): LimitId => parse<LimitId>('limit id', ID_PATTERN, raw);
/** @throws ValidationError `INVALID_ID` */
export const parsePlanId = (raw: unknown): PlanId => parse<PlanId>('plan id', ID_PATTERN, raw);
/** @throws ValidationError `INVALID_ID` */
export const parseEventId = (raw: unknown): EventId => parse<EventId>('event id', EVENT_ID_PATTERN, raw);
