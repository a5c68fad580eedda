/**
 * The admin API's resolvers: thin, over the `AdminStore` port. Every change is made under the calling
 * token's id (its audit entry), announced (every API instance reloads the config at once; their poll
 * catches a lost announcement), and logged without secrets (keys and tokens are shown once, in the reply).
 */
import { applyCorrection, type AccountSettings, type AccountView } from '../billing/index.js';
import type { PeriodSpec } from '../decider/index.js';
import { ValidationError, parseTenantId } from '../shared/index.js';
import type { AdminTokenRecord, AuditEntry, KeyView, TenantRecord, TenantStatus } from './ports.js';
import { planResolvers } from './plan-resolvers.js';
import { rolloutResolvers } from './rollout-resolvers.js';
import { changed, run, type AdminContext, type AdminDeps } from './support.js';
import { generateAdminToken, hashAdminToken } from './tokens.js';

const MAX_PAGE = 500;

const iso = (ms: number): string => new Date(ms).toISOString();

function pageSize(first: number): number {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE)
    throw new ValidationError('INVALID_INPUT', `first must be in 1..${MAX_PAGE}`);
  return first;
}

const tenantOut = (tenant: TenantRecord): Record<string, unknown> => ({
  id: tenant.id,
  status: tenant.status,
  plan: tenant.planId,
  createdAt: iso(tenant.createdAtMs),
  updatedAt: iso(tenant.updatedAtMs),
});

const keyOut = (key: KeyView): Record<string, unknown> => ({
  tenant: key.tenant,
  keyId: key.keyId,
  plan: key.planId,
  fingerprint: key.fingerprint,
  createdAt: iso(key.createdAtMs),
  isRevoked: key.isRevoked,
  expiresAt: key.expiresAtMs === null ? null : iso(key.expiresAtMs),
});

const tokenOut = (token: AdminTokenRecord): Record<string, unknown> => ({
  id: token.tokenId,
  isRevoked: token.isRevoked,
  createdAt: iso(token.createdAtMs),
});

const auditOut = (entry: AuditEntry): Record<string, unknown> => ({ ...entry, at: iso(entry.atMs) });

const accountOut = (account: AccountView): Record<string, unknown> => ({ ...account, webhookUrl: account.webhookUrl ?? null });

function keyOf(deps: AdminDeps, tenant: string, keyId: string): Promise<KeyView> {
  return deps.store.listKeys(tenant).then((keys) => {
    const key = keys.find((candidate) => candidate.keyId === keyId);
    if (key === undefined) throw new ValidationError('INVALID_INPUT', `key ${keyId} of ${tenant} was not stored`);
    return key;
  });
}

type Args = Record<string, unknown>;
type Resolver = (parent: unknown, args: Args, context: AdminContext) => Promise<unknown>;

function queries(deps: AdminDeps): Record<string, Resolver | ((parent: unknown, args: Args, context: AdminContext) => unknown)> {
  const { store } = deps;
  return {
    whoami: (_parent, _args, { actor }) => actor.tokenId,
    tenants: (_parent, args) =>
      run(async () => {
        const page = await store.listTenants({
          first: pageSize(args['first'] as number),
          ...(typeof args['status'] === 'string' ? { status: args['status'] as TenantStatus } : {}),
          ...(typeof args['plan'] === 'string' ? { planId: args['plan'] } : {}),
          ...(typeof args['after'] === 'string' ? { after: args['after'] } : {}),
        });
        return { items: page.items.map(tenantOut), cursor: page.cursor };
      }),
    tenant: (_parent, args) =>
      run(async () => ((tenant) => (tenant === undefined ? null : tenantOut(tenant)))(await store.getTenant(String(args['id'])))),
    keys: (_parent, args) =>
      run(async () => {
        const tenant = String(args['tenant']);
        const [keys, lastUsed] = await Promise.all([store.listKeys(tenant), deps.keyActivity.lastUsed(tenant)]);
        return keys.map((key) => ({
          ...keyOut(key),
          lastUsedAt: ((atMs) => (atMs === undefined ? null : iso(atMs)))(lastUsed.get(key.keyId)),
        }));
      }),
    account: (_parent, args) =>
      run(async () => ((account) => (account === undefined ? null : accountOut(account)))(await store.getAccount(String(args['tenant'])))),
    adminTokens: () => run(async () => (await store.listTokens()).map(tokenOut)),
    auditLog: (_parent, args) =>
      run(async () => {
        const page = await store.listAudit({
          first: pageSize(args['first'] as number),
          ...(typeof args['tokenId'] === 'string' ? { tokenId: args['tokenId'] } : {}),
          ...(typeof args['action'] === 'string' ? { action: args['action'] } : {}),
          ...(typeof args['target'] === 'string' ? { targetPrefix: args['target'] } : {}),
          ...(typeof args['after'] === 'string' ? { after: args['after'] } : {}),
        });
        return { items: page.items.map(auditOut), cursor: page.cursor };
      }),
  };
}

function tenantMutations(deps: AdminDeps): Record<string, Resolver> {
  const { store, clock } = deps;
  const setStatus =
    (status: TenantStatus, action: string): Resolver =>
    (_parent, args, { actor }) =>
      run(async () => {
        const target = `tenant/${String(args['id'])}`;
        const result = await store.setTenantStatus({
          tenant: String(args['id']),
          status,
          nowMs: clock.nowMs(),
          audit: { tokenId: actor.tokenId, action, target },
        });
        await changed(deps, { version: result.version, actor, action, target });
        return tenantOut(result.tenant);
      });
  return {
    createTenant: (_parent, args, { actor }) =>
      run(async () => {
        const target = `tenant/${String(args['id'])}`;
        const result = await store.createTenant({
          tenant: String(args['id']),
          planId: typeof args['plan'] === 'string' ? args['plan'] : null,
          nowMs: clock.nowMs(),
          audit: { tokenId: actor.tokenId, action: 'tenant.create', target },
        });
        await changed(deps, { version: result.version, actor, action: 'tenant.create', target });
        return tenantOut(result.tenant);
      }),
    suspendTenant: setStatus('suspended', 'tenant.suspend'),
    resumeTenant: setStatus('active', 'tenant.resume'),
    createAdminToken: (_parent, args, { actor }) =>
      run(async () => {
        const token = generateAdminToken();
        const tokenId = String(args['id']);
        const nowMs = clock.nowMs();
        await store.createToken({
          tokenId,
          hash: hashAdminToken(token),
          nowMs,
          audit: { tokenId: actor.tokenId, action: 'admin-token.create', target: `admin-token/${tokenId}` },
        });
        deps.logger.info({ tokenId: actor.tokenId, action: 'admin-token.create', target: `admin-token/${tokenId}` }, 'admin change');
        return { token, adminToken: tokenOut({ tokenId, isRevoked: false, createdAtMs: nowMs }) };
      }),
    revokeAdminToken: (_parent, args, { actor }) =>
      run(async () => {
        const target = `admin-token/${String(args['id'])}`;
        const record = await store.revokeToken({
          tokenId: String(args['id']),
          nowMs: clock.nowMs(),
          audit: { tokenId: actor.tokenId, action: 'admin-token.revoke', target },
        });
        deps.logger.info({ tokenId: actor.tokenId, action: 'admin-token.revoke', target }, 'admin change');
        return tokenOut(record);
      }),
  };
}

function keyMutations(deps: AdminDeps): Record<string, Resolver> {
  const { store, clock } = deps;
  return {
    createKey: (_parent, args, { actor }) =>
      run(async () => {
        const tenant = String(args['tenant']);
        const keyId = String(args['keyId']);
        const record = await store.getTenant(tenant);
        if (record === undefined) throw new ValidationError('INVALID_INPUT', `no tenant ${tenant}: create it first`);
        const planId = typeof args['plan'] === 'string' ? args['plan'] : record.planId;
        if (planId === null) throw new ValidationError('INVALID_INPUT', `tenant ${tenant} has no plan: name one (plan)`);
        const target = `key/${tenant}/${keyId}`;
        const { key, version } = await store.createKey({
          tenant,
          keyId,
          planId,
          nowMs: clock.nowMs(),
          audit: { tokenId: actor.tokenId, action: 'key.create', target },
        });
        await changed(deps, { version, actor, action: 'key.create', target });
        return { key, apiKey: keyOut(await keyOf(deps, tenant, keyId)) };
      }),
    revokeKey: (_parent, args, { actor }) =>
      run(async () => {
        const tenant = String(args['tenant']);
        const keyId = String(args['keyId']);
        const target = `key/${tenant}/${keyId}`;
        const version = await store.revokeKey({
          tenant,
          keyId,
          nowMs: clock.nowMs(),
          audit: { tokenId: actor.tokenId, action: 'key.revoke', target },
        });
        await changed(deps, { version, actor, action: 'key.revoke', target });
        return keyOut(await keyOf(deps, tenant, keyId));
      }),
    rotateKey: (_parent, args, { actor }) =>
      run(async () => {
        const tenant = String(args['tenant']);
        const newKeyId = String(args['newKeyId']);
        const target = `key/${tenant}/${String(args['keyId'])}`;
        const { key, version } = await store.rotateKey({
          tenant,
          keyId: String(args['keyId']),
          newKeyId,
          overlapMs: (args['overlapSeconds'] as number) * 1_000,
          nowMs: clock.nowMs(),
          audit: { tokenId: actor.tokenId, action: 'key.rotate', target },
        });
        await changed(deps, { version, actor, action: 'key.rotate', target });
        return { key, apiKey: keyOut(await keyOf(deps, tenant, newKeyId)) };
      }),
  };
}

function billingMutations(deps: AdminDeps): Record<string, Resolver> {
  const { store, clock } = deps;
  return {
    putAccount: (_parent, args, { actor }) =>
      run(async () => {
        const input = args['input'] as Record<string, unknown>;
        const tenant = parseTenantId(input['tenant']);
        const before = await store.getAccount(tenant);
        const settings = {
          tenant,
          billingPeriod: dropNulls(input['billingPeriod']) as unknown as PeriodSpec,
          price: {
            ...(input['price'] as Record<string, unknown>),
            tiers: ((input['price'] as { tiers: unknown[] }).tiers ?? []).map(dropNulls),
          },
          ...(typeof input['webhookUrl'] === 'string' ? { webhookUrl: input['webhookUrl'] } : {}),
          ...(typeof input['webhookSecret'] === 'string' ? { webhookSecret: input['webhookSecret'] } : {}),
        } as unknown as AccountSettings;
        const nowMs = clock.nowMs();
        const version = await store.putAccount(settings, nowMs);
        const after = await store.getAccount(tenant);
        const target = `account/${tenant}`;
        // the secret never reaches the log: views only
        await store.appendAudit({
          tokenId: actor.tokenId,
          action: before === undefined ? 'account.create' : 'account.update',
          target,
          before,
          after,
          nowMs,
        });
        await changed(deps, { version, actor, action: 'account.put', target });
        await deps.ensureAccount(tenant);
        return after === undefined ? null : accountOut(after);
      }),
    postCorrection: (_parent, args, { actor }) =>
      run(async () => {
        const input = args['input'] as Record<string, unknown>;
        const atMs = Date.parse(String(input['at']));
        if (Number.isNaN(atMs)) throw new ValidationError('INVALID_INPUT', 'invalid correction:\nat must be an ISO-8601 instant');
        const result = await applyCorrection(deps.corrections, {
          id: String(input['id']),
          tenant: String(input['tenant']),
          atMs,
          units: input['units'] as number,
          reason: String(input['reason']),
          author: actor.tokenId,
        });
        const target = `correction/${String(input['tenant'])}/${String(input['id'])}`;
        if (result.isNew) {
          const after = { units: input['units'], reason: input['reason'], periodStart: result.periodStart, eventId: result.eventId };
          await store.appendAudit({ tokenId: actor.tokenId, action: 'correction.post', target, after, nowMs: clock.nowMs() });
        }
        deps.logger.info({ tokenId: actor.tokenId, action: 'correction.post', target, isNew: result.isNew }, 'admin change');
        return result;
      }),
  };
}

function dropNulls(value: unknown): Record<string, unknown> {
  return Object.fromEntries(Object.entries((value ?? {}) as Record<string, unknown>).filter(([, field]) => field !== null));
}

/** The resolver map of `ADMIN_TYPE_DEFS`. */
export function adminResolvers(deps: AdminDeps): Record<string, Record<string, unknown>> {
  const plans = planResolvers(deps);
  const rollouts = rolloutResolvers(deps);
  return {
    Query: { ...queries(deps), ...plans.Query, ...rollouts.Query },
    Mutation: { ...tenantMutations(deps), ...keyMutations(deps), ...billingMutations(deps), ...plans.Mutation, ...rollouts.Mutation },
  };
}
