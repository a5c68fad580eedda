/**
 * One decider request for tests: a tenant's request of `cost` units against `limits`, with a fresh random request
 * id unless one is given, on the monthly billing period of `time.ts`.
 */
import { randomBytes } from 'node:crypto';
import type { DecideInput, LimitSpec } from '../../src/decider/index.js';
import { parseEventId, parseKeyId, parseTenantId, type EventId } from '../../src/shared/index.js';
import { MONTH } from './time.js';

export function decideRequest(input: {
  tenant: string;
  limits: LimitSpec[];
  cost: number;
  requestId?: EventId;
  keyId?: string;
  operation?: string;
}): DecideInput {
  return {
    tenant: parseTenantId(input.tenant),
    keyId: parseKeyId(input.keyId ?? 'k1'),
    requestId: input.requestId ?? parseEventId(`r-${randomBytes(8).toString('hex')}`),
    operation: input.operation ?? 'op',
    cost: input.cost,
    limits: input.limits,
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}
