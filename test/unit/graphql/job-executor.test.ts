import { describe, expect, it } from 'vitest';
import { InMemoryPlanStore, SchemaJobExecutor } from '../../../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../../../src/graphql/demo/index.js';
import { parseKeyId, parsePlanId, parseTenantId, systemClock } from '../../../src/shared/index.js';
import { plan, slowBucket } from '../../support/graphql.js';

function executor() {
  const store = new DemoStore();
  const plans = new InMemoryPlanStore([plan('basic', [slowBucket(1_000)])]);
  const schema = createDemoSchema({ store, version: 'test', deciderTimeMs: () => Promise.resolve(0), clock: systemClock });
  return new SchemaJobExecutor({ schema, plans });
}

const job = (tenant: string, query: string, extra: { cost?: number; planId?: string; variables?: Record<string, unknown> } = {}) => ({
  tenant: parseTenantId(tenant),
  keyId: parseKeyId('k1'),
  planId: parsePlanId(extra.planId ?? 'basic'),
  query,
  variables: extra.variables ?? {},
  operationName: null,
  cost: extra.cost ?? 100,
});

describe("SchemaJobExecutor (a deferred job's run)", () => {
  it("runs with the job tenant's own context", async () => {
    const run = await executor().execute(job('acme', '{ me { tenant keyId plan } }'));
    expect(run.result).toEqual({ data: { me: { tenant: 'acme', keyId: 'k1', plan: 'basic' } } });
  });

  it('measures the actual cost from what came back, like a request: an empty list costs less than asked', async () => {
    const subject = executor();
    const full = await subject.execute(job('acme', '{ products(first: 5) { nodes { id } } }'));
    const empty = await subject.execute(job('acme', '{ orders(first: 50) { nodes { id } } }'));
    expect(full.actualCost).toBe(6);
    expect(empty.actualCost).toBe(1);
  });

  it("keeps tenants apart: an order placed by one job is not seen by another tenant's job", async () => {
    const subject = executor();
    await subject.execute(job('acme', 'mutation { placeOrder(items: [{ productId: "p-0001", quantity: 1 }]) { id } }'));
    const own = await subject.execute(job('acme', '{ orders(first: 5) { totalCount } }'));
    const other = await subject.execute(job('globex', '{ orders(first: 5) { totalCount } }'));
    expect(own.result.data).toEqual({ orders: { totalCount: 1 } });
    expect(other.result.data).toEqual({ orders: { totalCount: 0 } });
  });

  it('fails a document that no longer validates, charging the minimum', async () => {
    const run = await executor().execute(job('acme', '{ nope }'));
    expect(run).toMatchObject({ result: { data: null, errors: [{ code: 'GRAPHQL_VALIDATION_FAILED' }] }, actualCost: 1 });
  });

  it('fails a job whose plan is gone, and reports no policy for it', async () => {
    const subject = executor();
    const run = await subject.execute(job('acme', '{ me { tenant } }', { planId: 'gone' }));
    expect(run.result.errors).toEqual([{ message: 'no plan is configured for this job', code: 'PLAN_UNAVAILABLE' }]);
    expect(subject.policyOf({ tenant: parseTenantId('acme'), planId: parsePlanId('gone') })).toBeUndefined();
    expect(subject.policyOf({ tenant: parseTenantId('acme'), planId: parsePlanId('basic') })).toMatchObject({ policyVersion: 1 });
  });
});
