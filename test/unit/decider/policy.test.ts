import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLimits, validateLimits } from '../../../src/decider/policy.js';
import type { LimitSpec } from '../../../src/decider/ports.js';
import { ValidationError } from '../../../src/shared/index.js';

const FIXTURES = new URL('../../fixtures/policies/', import.meta.url);

const SAFE = '9007199254740991';
const WINDOW_MAX = '31622400000';

/** Every invalid policy fixture and the exact problems it is refused with, in order. */
const EXPECTED: Record<string, string[]> = {
  'invalid-not-a-list.json': ['limits must be an array'],
  'invalid-limit-not-an-object.json': ['limits[1] must be an object'],
  'invalid-too-many-limits.json': ['limits has more than 64 entries'],
  'invalid-id.json': ['limits[0].id is not a valid id'],
  'invalid-repeated-id.json': ['limits[1].id burst is repeated in scope tenant'],
  'invalid-scope.json': ['limits[0].scope must be tenant, apiKey or ip'],
  'invalid-mode.json': ['limits[0].mode must be hard, soft, defer or shadow'],
  'invalid-on-decider-down.json': ['limits[0].onDeciderDown must be open, closed or local'],
  'invalid-missing-field.json': ['limits[0].onDeciderDown must be open, closed or local'],
  'invalid-unknown-field.json': ['limits[0] has an unknown field: priority'],
  'invalid-algorithm-kind.json': ['limits[0].algorithm.kind is unknown'],
  'invalid-algorithm-unknown-field.json': ['limits[0].algorithm has an unknown field: burstMs'],
  'invalid-parameter-below-range.json': [
    `limits[0].algorithm.capacity must be an integer in 1..${SAFE}, got 0`,
    `limits[1].algorithm.limit must be an integer in 1..${SAFE}, got -5`,
  ],
  'invalid-parameter-not-an-integer.json': [`limits[0].algorithm.refillAmount must be an integer in 1..${SAFE}, got 1.5`],
  'invalid-parameter-a-string.json': [`limits[0].algorithm.limit must be an integer in 1..${SAFE}, got "10"`],
  'invalid-parameter-missing.json': [`limits[0].algorithm.refillAmount must be an integer in 1..${SAFE}, got undefined`],
  'invalid-window-too-long.json': [`limits[0].algorithm.windowMs must be an integer in 1..${WINDOW_MAX}, got 31622400001`],
  'invalid-refill-not-exact.json': ['limits[0].algorithm must keep capacity × refillPeriodMs + refillPeriodMs × refillAmount below 2^53'],
  'invalid-sliding-window-not-exact.json': ['limits[0].algorithm must keep 2 × limit × windowMs below 2^53'],
  'invalid-period-unit.json': ['limits[0].algorithm.period.unit must be second, day or month'],
  'invalid-period-length.json': ['limits[0].algorithm.period.lengthSeconds must be an integer in 1..86400, got 86401'],
  'invalid-period-anchor-day.json': ['limits[0].algorithm.period.anchorDay must be an integer in 1..31, got 32'],
  'invalid-period-time-zone.json': ['limits[0].algorithm.period.timeZone is not an IANA zone: Mars/Olympus_Mons'],
  'invalid-too-many-thresholds.json': ['limits[0].algorithm.thresholdsPercent has more than 8 entries'],
  'invalid-threshold-range.json': [
    'limits[0].algorithm.thresholdsPercent[0] must be an integer in 1..1000, got 0',
    'limits[0].algorithm.thresholdsPercent[2] must be an integer in 1..1000, got 1001',
  ],
  'invalid-concurrency-range.json': [
    'limits[0].algorithm.slots must be an integer in 1..1000000, got 1000001',
    'limits[0].algorithm.leaseTtlMs must be an integer in 1..86400000, got 0',
  ],
  'invalid-every-problem-collected.json': [
    'limits[0].id is not a valid id',
    `limits[0].algorithm.capacity must be an integer in 1..${SAFE}, got -1`,
    'limits[1].scope must be tenant, apiKey or ip',
    `limits[1].algorithm.windowMs must be an integer in 1..${WINDOW_MAX}, got 0`,
    'limits[2].algorithm.period.anchorDay must be an integer in 1..31, got 0',
    'limits[2].algorithm.thresholdsPercent[0] must be an integer in 1..1000, got 5000',
  ],
};

function fixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
}

function refusal(raw: unknown): ValidationError {
  try {
    parseLimits(raw);
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('the policy was accepted');
}

describe('limit policies', () => {
  it('has one expectation for every invalid fixture', () => {
    const invalid = readdirSync(FIXTURES).filter((name) => name.startsWith('invalid-'));
    expect(invalid.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))('refuses %s with the exact problems', (name, problems) => {
    const error = refusal(fixture(name));
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toBe(`invalid limits:\n${problems.join('\n')}`);
    expect(error.details).toEqual({ problems });
  });

  it('accepts every algorithm, scope, mode and period unit and returns the limits unchanged', () => {
    const raw = fixture('valid.json');
    expect(parseLimits(raw)).toEqual(raw);
  });

  it('checks limits built in code with the same schema', () => {
    // given a limit whose refill math would not be exact in the script
    const limits = [
      {
        ...(fixture('valid.json') as LimitSpec[])[0],
        algorithm: { kind: 'token-bucket', capacity: 2 ** 52, refillAmount: 1, refillPeriodMs: 2 },
      },
    ];
    // then it is refused before anything reaches Redis
    expect(() => validateLimits(limits as LimitSpec[])).toThrow(
      'invalid limits:\nlimits[0].algorithm must keep capacity × refillPeriodMs + refillPeriodMs × refillAmount below 2^53',
    );
  });
});
