/**
 * `tollgate tenants …`, `tollgate keys …` and `tollgate admin-tokens …`: the admin API's tenants, API keys
 * and admin tokens. A key or token is printed once, when it is made; listings show fingerprints.
 */
import { CliError, callAdmin, table } from './admin-client.js';
import type { Command } from './command.js';
import { commandWithSubcommands, intFlag, type SubcommandContext } from './subcommands.js';

const TENANT_FIELDS = 'id status plan createdAt updatedAt';
const TENANT_COLUMNS = ['id', 'status', 'plan', 'createdAt', 'updatedAt'];
const KEY_FIELDS = 'tenant keyId plan fingerprint createdAt lastUsedAt isRevoked expiresAt';
const KEY_COLUMNS = ['keyId', 'plan', 'fingerprint', 'createdAt', 'lastUsedAt', 'isRevoked', 'expiresAt'];

function print(context: SubcommandContext, value: unknown, rows: Record<string, unknown>[], columns: string[]): void {
  context.io.out(context.isJson ? JSON.stringify(value, null, 2) : table(rows, columns));
}

async function tenantChange(context: SubcommandContext, mutation: 'suspendTenant' | 'resumeTenant'): Promise<void> {
  const data = await callAdmin(context.target(), `mutation($id: String!) { ${mutation}(id: $id) { ${TENANT_FIELDS} } }`, {
    id: context.positionals[0],
  });
  const tenant = data[mutation] as Record<string, unknown>;
  print(context, tenant, [tenant], TENANT_COLUMNS);
}

export const tenantsCommand: Command = commandWithSubcommands('tenants', 'tenants: create, list, show, suspend, resume', {
  list: {
    usage: 'list [--status active|suspended] [--plan <plan>] [--first <n>] [--after <cursor>]',
    summary: 'list tenants, a page at a time (the next page: --after <cursor printed last>)',
    positionals: [],
    options: { status: { type: 'string' }, plan: { type: 'string' }, first: { type: 'string' }, after: { type: 'string' } },
    async run(context) {
      const { values } = context;
      if (values['status'] !== undefined && values['status'] !== 'active' && values['status'] !== 'suspended') {
        throw new CliError(`--status ${JSON.stringify(values['status'])}: must be active or suspended`, 2);
      }
      const data = await callAdmin(
        context.target(),
        `query($status: TenantStatus, $plan: String, $first: Int, $after: String) {
          tenants(status: $status, plan: $plan, first: $first, after: $after) { items { ${TENANT_FIELDS} } cursor } }`,
        {
          status: values['status'],
          plan: values['plan'],
          first: intFlag(values, 'first', { isRequired: false, min: 1 }) ?? 50,
          after: values['after'],
        },
      );
      const page = data['tenants'] as { items: Record<string, unknown>[]; cursor: string | null };
      print(context, page, page.items, TENANT_COLUMNS);
      if (!context.isJson && page.cursor !== null) context.io.out(`next page: --after ${page.cursor}`);
    },
  },
  create: {
    usage: 'create <tenant> [--plan <plan>]',
    summary: 'create a tenant (--plan: the plan its keys get when none is named)',
    positionals: ['<tenant>'],
    options: { plan: { type: 'string' } },
    async run(context) {
      const data = await callAdmin(
        context.target(),
        `mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { ${TENANT_FIELDS} } }`,
        {
          id: context.positionals[0],
          plan: context.values['plan'],
        },
      );
      const tenant = data['createTenant'] as Record<string, unknown>;
      print(context, tenant, [tenant], TENANT_COLUMNS);
    },
  },
  show: {
    usage: 'show <tenant>',
    summary: 'one tenant',
    positionals: ['<tenant>'],
    async run(context) {
      const data = await callAdmin(context.target(), `query($id: String!) { tenant(id: $id) { ${TENANT_FIELDS} } }`, {
        id: context.positionals[0],
      });
      const tenant = data['tenant'] as Record<string, unknown> | null;
      if (tenant === null) throw new CliError(`NOT_FOUND: no tenant ${context.positionals[0] ?? ''}`, 2);
      print(context, tenant, [tenant], TENANT_COLUMNS);
    },
  },
  suspend: {
    usage: 'suspend <tenant>',
    summary: 'refuse every key of the tenant at once (403 TENANT_SUSPENDED; nothing metered)',
    positionals: ['<tenant>'],
    run: (context) => tenantChange(context, 'suspendTenant'),
  },
  resume: {
    usage: 'resume <tenant>',
    summary: 'serve the tenant again',
    positionals: ['<tenant>'],
    run: (context) => tenantChange(context, 'resumeTenant'),
  },
});

function printCreatedKey(context: SubcommandContext, created: { key: string; apiKey: Record<string, unknown> }): void {
  if (context.isJson) {
    context.io.out(JSON.stringify(created, null, 2));
    return;
  }
  context.io.out(`${table([created.apiKey], KEY_COLUMNS)}\n\nkey (shown once, store it now): ${created.key}`);
}

export const keysCommand: Command = commandWithSubcommands('keys', 'API keys of a tenant: create, list, revoke, rotate', {
  create: {
    usage: 'create <tenant> <keyId> [--plan <plan>]',
    summary: "create a key (the tenant's plan unless --plan); the key is printed once",
    positionals: ['<tenant>', '<keyId>'],
    options: { plan: { type: 'string' } },
    async run(context) {
      const [tenant, keyId] = context.positionals;
      const data = await callAdmin(
        context.target(),
        `mutation($tenant: String!, $keyId: String!, $plan: String) { createKey(tenant: $tenant, keyId: $keyId, plan: $plan) { key apiKey { ${KEY_FIELDS} } } }`,
        { tenant, keyId, plan: context.values['plan'] },
      );
      printCreatedKey(context, data['createKey'] as { key: string; apiKey: Record<string, unknown> });
    },
  },
  list: {
    usage: 'list <tenant>',
    summary: "the tenant's keys: fingerprint, plan, created, last used (± 1 s), revoked, end of a rotation's overlap",
    positionals: ['<tenant>'],
    async run(context) {
      const data = await callAdmin(context.target(), `query($tenant: String!) { keys(tenant: $tenant) { ${KEY_FIELDS} } }`, {
        tenant: context.positionals[0],
      });
      const keys = data['keys'] as Record<string, unknown>[];
      print(context, keys, keys, KEY_COLUMNS);
    },
  },
  revoke: {
    usage: 'revoke <tenant> <keyId>',
    summary: 'revoke a key (401 API_KEY_REVOKED on every instance within a second)',
    positionals: ['<tenant>', '<keyId>'],
    async run(context) {
      const [tenant, keyId] = context.positionals;
      const data = await callAdmin(
        context.target(),
        `mutation($tenant: String!, $keyId: String!) { revokeKey(tenant: $tenant, keyId: $keyId) { ${KEY_FIELDS} } }`,
        {
          tenant,
          keyId,
        },
      );
      const key = data['revokeKey'] as Record<string, unknown>;
      print(context, key, [key], KEY_COLUMNS);
    },
  },
  rotate: {
    usage: 'rotate <tenant> <keyId> <newKeyId> --overlap <seconds>',
    summary: 'a new key of the same plan; the old one works for --overlap seconds more, then stops',
    positionals: ['<tenant>', '<keyId>', '<newKeyId>'],
    options: { overlap: { type: 'string' } },
    async run(context) {
      const [tenant, keyId, newKeyId] = context.positionals;
      const overlapSeconds = intFlag(context.values, 'overlap', { isRequired: true, min: 0 });
      const data = await callAdmin(
        context.target(),
        `mutation($tenant: String!, $keyId: String!, $newKeyId: String!, $overlap: Int!) {
          rotateKey(tenant: $tenant, keyId: $keyId, newKeyId: $newKeyId, overlapSeconds: $overlap) { key apiKey { ${KEY_FIELDS} } } }`,
        { tenant, keyId, newKeyId, overlap: overlapSeconds },
      );
      printCreatedKey(context, data['rotateKey'] as { key: string; apiKey: Record<string, unknown> });
    },
  },
});

export const adminTokensCommand: Command = commandWithSubcommands('admin-tokens', 'admin tokens: create, list, revoke', {
  create: {
    usage: 'create <id>',
    summary: 'a new admin token, printed once',
    positionals: ['<id>'],
    async run(context) {
      const data = await callAdmin(
        context.target(),
        'mutation($id: String!) { createAdminToken(id: $id) { token adminToken { id isRevoked createdAt } } }',
        {
          id: context.positionals[0],
        },
      );
      const created = data['createAdminToken'] as { token: string; adminToken: Record<string, unknown> };
      if (context.isJson) context.io.out(JSON.stringify(created, null, 2));
      else context.io.out(`${table([created.adminToken], ['id', 'createdAt'])}\n\ntoken (shown once, store it now): ${created.token}`);
    },
  },
  list: {
    usage: 'list',
    summary: 'every admin token (ids, never the tokens)',
    positionals: [],
    async run(context) {
      const tokens = (await callAdmin(context.target(), '{ adminTokens { id isRevoked createdAt } }'))['adminTokens'] as Record<
        string,
        unknown
      >[];
      print(context, tokens, tokens, ['id', 'isRevoked', 'createdAt']);
    },
  },
  revoke: {
    usage: 'revoke <id>',
    summary: 'revoke an admin token (refused on its next call)',
    positionals: ['<id>'],
    async run(context) {
      const data = await callAdmin(context.target(), 'mutation($id: String!) { revokeAdminToken(id: $id) { id isRevoked createdAt } }', {
        id: context.positionals[0],
      });
      const token = data['revokeAdminToken'] as Record<string, unknown>;
      print(context, token, [token], ['id', 'isRevoked', 'createdAt']);
    },
  },
});
