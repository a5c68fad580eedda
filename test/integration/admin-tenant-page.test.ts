/**
 * The admin store's tenant pages on real DynamoDB Local, while other tenants are written into the same partition:
 * for every filter and page size, walking the pages from the first to the last gives exactly the matching tenants,
 * in id order, none skipped or repeated, and a first page is never empty while a match exists.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditInput, TenantStatus } from '../../src/admin/index.js';
import { DynamoConfigStore } from '../../src/graphql/index.js';
import { DynamoAdminStore } from '../../src/graphql/config/admin-store.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { testStack, uniqueTenant } from '../support/stack.js';

const stack = testStack();
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const options = { tablePrefix: stack.tablePrefix };
const store = new DynamoAdminStore(dynamo, new DynamoConfigStore(dynamo, options), options);
const audit: AuditInput = { tokenId: 'admin-tenant-page', action: 'tenant.create', target: 'test' };

afterAll(() => dynamo.destroy());

/** A seeded generator, so a failing case can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

async function walk(filter: { status?: TenantStatus; planId?: string; first: number }): Promise<{ ids: string[]; pages: number[] }> {
  const ids: string[] = [];
  const pages: number[] = [];
  let after: string | undefined;
  for (let round = 0; round < 500; round += 1) {
    const page = await store.listTenants({ ...filter, ...(after === undefined ? {} : { after }) });
    ids.push(...page.items.map((tenant) => tenant.id));
    pages.push(page.items.length);
    if (page.cursor === null) return { ids, pages };
    after = page.cursor;
  }
  throw new Error('the pages never ended');
}

describe('tenant pages', () => {
  it('walk every filtered page to exactly the matching tenants while other tenants are written around them', async () => {
    const random = seeded(20_261_206);
    const base = uniqueTenant('tp');
    const plan = `p-${base}`;
    const otherPlan = `q-${base}`;
    const expected: { id: string; status: TenantStatus; planId: string }[] = [];
    for (let index = 0; index < 40; index += 1) {
      const id = `${base}-${String(index).padStart(2, '0')}`;
      const planId = random() < 0.7 ? plan : otherPlan;
      const status: TenantStatus = random() < 0.3 ? 'suspended' : 'active';
      await store.createTenant({ tenant: id, planId, nowMs: Date.now(), audit });
      if (status === 'suspended') await store.setTenantStatus({ tenant: id, status, nowMs: Date.now(), audit });
      expected.push({ id, status, planId });
    }
    // other writers: tenants sorting before, among and after ours, on other plans, written while the pages are read
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        const prefix = ['a', base, 'zz'][written % 3] as string;
        await store.createTenant({
          tenant: `${prefix}-w${written}-${Date.now().toString(36)}`,
          planId: `w-${base}`,
          nowMs: Date.now(),
          audit,
        });
        written += 1;
      }
    })();
    try {
      for (const first of [1, 2, 5, 25]) {
        for (const filter of [
          { planId: plan },
          { planId: plan, status: 'suspended' as const },
          { planId: plan, status: 'active' as const },
          { planId: otherPlan, status: 'suspended' as const },
        ]) {
          const want = expected
            .filter((tenant) => tenant.planId === filter.planId && (filter.status === undefined || tenant.status === filter.status))
            .map((tenant) => tenant.id);
          const { ids, pages } = await walk({ ...filter, first });
          expect(ids, JSON.stringify({ filter, first })).toEqual(want);
          expect(
            pages.slice(0, -1).every((size) => size === first),
            JSON.stringify({ filter, first, pages }),
          ).toBe(true);
          if (want.length > 0) expect(pages[0], JSON.stringify({ filter, first })).toBeGreaterThan(0);
        }
      }
    } finally {
      writing = false;
      await writer;
    }
    expect(written).toBeGreaterThan(0);
  }, 240_000);
});
