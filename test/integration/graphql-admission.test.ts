/**
 * Admission control in `useTollgate` (yoga.fetch, the real Redis decider):
 * a request holds its in-flight slot until its response is built, whatever
 * that response is (served, refused by a static cap, a parse error, a cost
 * refusal), and a shed request never reaches the decider.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisDecider,
  connectDeciderRedis,
  type DeciderRedis,
  type DecideInput,
  type Decider,
  type Decision,
  type SettleInput,
  type SettleResult,
} from '../../src/decider/index.js';
import { Admission } from '../../src/graphql/index.js';
import { systemClock } from '../../src/shared/index.js';
import { waitFor } from '../support/poll.js';
import { closeAll } from '../support/teardown.js';
import { CountingDecider, bodyOf, codeOf, plan, slowBucket, testApp } from '../support/graphql.js';
import { testStack, uniqueTenant } from '../support/stack.js';

let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 5_000 });
});

afterAll(async () => {
  await closeAll(redis);
});

/** A decider whose decisions wait until the test opens the gate (our own port, over the real one). */
class GatedDecider implements Decider {
  /** Every decision asked for, in order, counted before it waits. */
  readonly asked: DecideInput[] = [];
  private opened: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;

  constructor(private readonly inner: Decider) {}

  close(): void {
    this.opened = new Promise((resolveOpen) => (this.open = resolveOpen));
  }

  release(): void {
    this.open();
  }

  async decide(input: DecideInput): Promise<Decision> {
    this.asked.push(input);
    await this.opened;
    return await this.inner.decide(input);
  }

  settle(input: SettleInput): Promise<SettleResult> {
    return this.inner.settle(input);
  }
}

const ME = { query: '{ me { tenant } }' };

describe('admission control in useTollgate', () => {
  it('gives the slot back with every response, refusals included', async () => {
    // given one slot for every class
    const decider = new CountingDecider(new RedisDecider(redis, { shardCount: 16, clock: systemClock }));
    const app = testApp({
      decider,
      plans: [plan('p', [slowBucket(1_000)], 50)],
      tollgate: { admission: new Admission({ sheddable: 1, default: 1, critical: 1 }) },
    });
    const key = app.keyFor(uniqueTenant('adm'), 'p');
    // when requests that end in a parse error, a static cap, a batch cap, a cost refusal and a 200 follow each other
    const statuses: [unknown, number][] = [];
    for (const body of [
      '{"query":"{ me { "}',
      { query: `{ ${Array.from({ length: 40 }, (_, index) => `a${index}: me { tenant }`).join(' ')} }` },
      Array.from({ length: 11 }, () => ME),
      { query: '{ products(first: 100) { nodes { id } } }' },
      ME,
      ME,
    ]) {
      const response = await app.post(body, { key });
      const parsed = await bodyOf(response);
      statuses.push([codeOf(parsed) ?? 'served', response.status]);
    }
    // then none of them was shed: each gave its slot back
    expect(statuses).toEqual([
      // (yoga answers a parse error 200 to application/json clients)
      ['GRAPHQL_PARSE_FAILED', 200],
      ['ALIAS_LIMIT_EXCEEDED', 400],
      ['BATCH_LIMIT_EXCEEDED', 413],
      ['COST_EXCEEDS_MAXIMUM', 400],
      ['served', 200],
      ['served', 200],
    ]);
  });

  it('sheds by criticality while admitted requests wait for the decider, and never decides a shed one', async () => {
    // given bounds 1 (sheddable), 2 (default), 3 (critical) and a decider that holds every decision
    const decider = new GatedDecider(new RedisDecider(redis, { shardCount: 16, clock: systemClock }));
    const app = testApp({
      decider,
      plans: [
        { ...plan('bulk', [slowBucket(1_000)]), criticality: 'sheddable' },
        plan('std', [slowBucket(1_000)]),
        { ...plan('vip', [slowBucket(1_000)]), criticality: 'critical' },
      ],
      tollgate: { admission: new Admission({ sheddable: 1, default: 2, critical: 3 }) },
    });
    const bulk = app.keyFor(uniqueTenant('bulk'), 'bulk');
    const std = app.keyFor(uniqueTenant('std'), 'std');
    const vip = app.keyFor(uniqueTenant('vip'), 'vip');
    decider.close();
    // when, class by class from sheddable to critical, one request is admitted (and waits in the decider) and
    // a second one of the same class follows
    const held: Promise<Response>[] = [];
    const shed: Response[] = [];
    for (const key of [bulk, std, vip]) {
      held.push(app.post(ME, { key }));
      await waitFor(`decision ${held.length} to be asked for`, () => decider.asked.length === held.length);
      shed.push(await app.post(ME, { key }));
    }
    // then each second one is shed, at 1, 2 and 3 in flight, with 503 OVERLOADED and Retry-After, before the decider
    expect(shed.map((response) => response.status)).toEqual([503, 503, 503]);
    expect(shed.map((response) => response.headers.get('retry-after'))).toEqual(['1', '1', '1']);
    expect(codeOf(await bodyOf(shed[0] as Response))).toBe('OVERLOADED');
    expect(decider.asked).toHaveLength(3);
    // when the decisions are let through
    decider.release();
    // then the held requests are served and every class is admitted again
    expect((await Promise.all(held)).map((response) => response.status)).toEqual([200, 200, 200]);
    expect((await app.post(ME, { key: bulk })).status).toBe(200);
    const metrics = await (await app.yoga.fetch('http://tollgate.test/metrics')).text();
    expect(metrics).toContain('tollgate_shed_total{criticality="sheddable",reason="in-flight"} 1');
    expect(metrics).toContain('tollgate_shed_total{criticality="default",reason="in-flight"} 1');
    expect(metrics).toContain('tollgate_shed_total{criticality="critical",reason="in-flight"} 1');
  });
});
