import { describe, expect, it } from 'vitest';
import { Admission, parsePlan, type AdmissionLease, type Criticality } from '../../../src/graphql/index.js';
import { ValidationError, loadConfig } from '../../../src/shared/index.js';

const REQUIRED = { REDIS_URL: 'redis://127.0.0.1:6390', TEMPORAL_ADDRESS: '127.0.0.1:7243' };

describe('Admission', () => {
  it('sheds sheddable work first and critical work last as the in-flight count rises', () => {
    // given bounds 2 (sheddable), 3 (default), 4 (critical)
    const admission = new Admission({ sheddable: 2, default: 3, critical: 4 });
    const leases: AdmissionLease[] = [];
    const admitted = (criticality: Criticality): boolean => {
      const lease = admission.tryAdmit(criticality);
      if (lease !== undefined) leases.push(lease);
      return lease !== undefined;
    };
    // when requests of every class arrive while nothing finishes
    const outcomes = [
      admitted('sheddable'), // 0 in flight: admitted
      admitted('sheddable'), // 1: admitted
      admitted('sheddable'), // 2: shed
      admitted('default'), // 2: admitted
      admitted('default'), // 3: shed
      admitted('critical'), // 3: admitted
      admitted('critical'), // 4: shed
    ];
    // then each class is shed at its own bound
    expect(outcomes).toEqual([true, true, false, true, false, true, false]);
    expect(admission.current).toBe(4);
  });

  it('frees a slot once per lease, however often it is released', () => {
    const admission = new Admission({ sheddable: 1, default: 1, critical: 1 });
    const lease = admission.tryAdmit('critical');
    expect(admission.tryAdmit('critical')).toBeUndefined();
    lease?.release();
    lease?.release();
    expect(admission.current).toBe(0);
    expect(admission.tryAdmit('sheddable')).toBeDefined();
    expect(admission.tryAdmit('critical')).toBeUndefined();
  });

  it.each([
    [{ sheddable: 0, default: 1, critical: 1 }],
    [{ sheddable: 2, default: 1, critical: 3 }],
    [{ sheddable: 1, default: 3, critical: 2 }],
    [{ sheddable: 1, default: 1.5, critical: 2 }],
  ])('refuses unordered or non-integer bounds %j', (bounds) => {
    expect(() => new Admission(bounds)).toThrow(RangeError);
  });
});

describe('the edge bounds in the config', () => {
  it('derives each criticality bound from API_MAX_IN_FLIGHT and its percent, at least 1 and sheddable never above default', () => {
    const config = loadConfig({
      ...REQUIRED,
      API_MAX_IN_FLIGHT: '10',
      API_IN_FLIGHT_DEFAULT_PERCENT: '55',
      API_IN_FLIGHT_SHEDDABLE_PERCENT: '90',
      API_MAX_BODY_BYTES: '1000',
    });
    expect(config.api.inFlight).toEqual({ critical: 10, default: 5, sheddable: 5 });
    expect(config.api.maxBodyBytes).toBe(1_000);
    expect(loadConfig({ ...REQUIRED, API_MAX_IN_FLIGHT: '1' }).api.inFlight).toEqual({ critical: 1, default: 1, sheddable: 1 });
  });

  it.each([
    ['API_MAX_BODY_BYTES', '0'],
    ['API_MAX_BODY_BYTES', '16777217'],
    ['API_MAX_IN_FLIGHT', '-1'],
    ['API_IN_FLIGHT_DEFAULT_PERCENT', '101'],
    ['API_IN_FLIGHT_SHEDDABLE_PERCENT', 'half'],
  ])('refuses %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ ...REQUIRED, [name]: value })).toThrow(ValidationError);
    expect(() => loadConfig({ ...REQUIRED, [name]: value })).toThrow(new RegExp(`^invalid configuration:\\n${name}: `));
  });
});

describe("a plan's criticality", () => {
  const base = {
    id: 'p1',
    version: 1,
    billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
    maxCostPerOperation: 10,
    limits: [],
  };

  it('is optional and one of critical, default, sheddable', () => {
    expect(parsePlan(base).criticality).toBeUndefined();
    expect(parsePlan({ ...base, criticality: 'sheddable' }).criticality).toBe('sheddable');
    expect(() => parsePlan({ ...base, criticality: 'urgent' })).toThrow(/^invalid plan:\n.*criticality/);
  });
});
