/**
 * `tollgate accounts …`, `tollgate corrections post` and `tollgate audit-log`: the admin API's accounts
 * (the webhook secret is write-only: never printed, never read back), corrections (correction.v1) and
 * its audit log.
 */
import { readFileSync } from 'node:fs';
import { CliError, callAdmin, table } from './admin-client.js';
import type { Command } from './command.js';
import { commandWithSubcommands, intFlag, type SubcommandContext } from './subcommands.js';

const ACCOUNT_FIELDS =
  'tenant billingPeriod { unit anchorDay timeZone lengthSeconds } price { currency baseFeeMicros includedUnits tiers { upToUnits unitPriceMicros } } webhookUrl hasWebhookSecret';

function printAccount(context: SubcommandContext, account: Record<string, unknown>): void {
  if (context.isJson) {
    context.io.out(JSON.stringify(account, null, 2));
    return;
  }
  const period = account['billingPeriod'] as Record<string, unknown>;
  const price = account['price'] as Record<string, unknown>;
  const row = {
    ...account,
    billingPeriod: `${String(period['unit'])}, anchor day ${String(period['anchorDay'])}, ${String(period['timeZone'])}`,
    price: `${String(price['currency'])} base ${String(price['baseFeeMicros'])} µ, ${String(price['includedUnits'])} included, ${(price['tiers'] as unknown[]).length} tier(s)`,
  };
  context.io.out(table([row], ['tenant', 'billingPeriod', 'price', 'webhookUrl', 'hasWebhookSecret']));
}

/** The price of `accounts set`: a JSON file, or a flat unit price from flags. @throws CliError (exit 2) */
function priceOf(values: Record<string, unknown>): Record<string, unknown> {
  if (typeof values['price-file'] === 'string') {
    try {
      return JSON.parse(readFileSync(values['price-file'], 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new CliError(`--price-file ${values['price-file']}: ${error instanceof Error ? error.message : String(error)}`, 2);
    }
  }
  if (typeof values['currency'] !== 'string')
    throw new CliError('give --price-file <file.json>, or --currency <ISO 4217> and --unit-price-micros <n>', 2);
  return {
    currency: values['currency'],
    baseFeeMicros: intFlag(values, 'base-fee-micros', { isRequired: false }) ?? 0,
    includedUnits: intFlag(values, 'included-units', { isRequired: false }) ?? 0,
    tiers: [{ unitPriceMicros: intFlag(values, 'unit-price-micros', { isRequired: true }) }],
  };
}

export const accountsCommand: Command = commandWithSubcommands(
  'accounts',
  "tenants' accounts: show, set (billing period, price, webhook)",
  {
    show: {
      usage: 'show <tenant>',
      summary: "the tenant's account (the webhook secret is never shown: only whether one is set)",
      positionals: ['<tenant>'],
      async run(context) {
        const data = await callAdmin(context.target(), `query($tenant: String!) { account(tenant: $tenant) { ${ACCOUNT_FIELDS} } }`, {
          tenant: context.positionals[0],
        });
        const account = data['account'] as Record<string, unknown> | null;
        if (account === null) throw new CliError(`NOT_FOUND: tenant ${context.positionals[0] ?? ''} has no account`, 2);
        printAccount(context, account);
      },
    },
    set: {
      usage:
        'set <tenant> --period month|day [--anchor-day <1..31>] [--time-zone <IANA>] (--price-file <file.json> | --currency <EUR> --unit-price-micros <n> [--base-fee-micros <n>] [--included-units <n>]) [--webhook-url <url>] [--webhook-secret <s> | $TOLLGATE_WEBHOOK_SECRET]',
      summary: "create or change the account; its account workflow runs at once. Its period must agree with the plans of the tenant's keys",
      positionals: ['<tenant>'],
      options: {
        period: { type: 'string' },
        'anchor-day': { type: 'string' },
        'time-zone': { type: 'string' },
        'price-file': { type: 'string' },
        currency: { type: 'string' },
        'unit-price-micros': { type: 'string' },
        'base-fee-micros': { type: 'string' },
        'included-units': { type: 'string' },
        'webhook-url': { type: 'string' },
        'webhook-secret': { type: 'string' },
      },
      async run(context) {
        const { values } = context;
        if (typeof values['period'] !== 'string') throw new CliError('--period month|day is required', 2);
        const secret = (values['webhook-secret'] as string | undefined) ?? context.io.env['TOLLGATE_WEBHOOK_SECRET'];
        const input = {
          tenant: context.positionals[0],
          billingPeriod: {
            unit: values['period'],
            anchorDay: intFlag(values, 'anchor-day', { isRequired: false, min: 1 }) ?? 1,
            timeZone: values['time-zone'] ?? 'UTC',
          },
          price: priceOf(values),
          ...(typeof values['webhook-url'] === 'string' ? { webhookUrl: values['webhook-url'] } : {}),
          ...(secret === undefined ? {} : { webhookSecret: secret }),
        };
        const data = await callAdmin(
          context.target(),
          `mutation($input: AccountInput!) { putAccount(input: $input) { ${ACCOUNT_FIELDS} } }`,
          { input },
        );
        printAccount(context, data['putAccount'] as Record<string, unknown>);
      },
    },
  },
);

export const correctionsCommand: Command = commandWithSubcommands('corrections', 'corrections (correction.v1): post a debit or a credit', {
  post: {
    usage: 'post <tenant> --id <id> --units <n> --reason <text> [--at <ISO-8601>]',
    summary:
      'a debit (units > 0) or credit (units < 0) of the billing period holding --at (default now); a retry with the same --id is the same correction',
    positionals: ['<tenant>'],
    options: { id: { type: 'string' }, units: { type: 'string' }, reason: { type: 'string' }, at: { type: 'string' } },
    async run(context) {
      const { values } = context;
      for (const flag of ['id', 'units', 'reason']) if (typeof values[flag] !== 'string') throw new CliError(`--${flag} is required`, 2);
      const units = Number(values['units']);
      if (!Number.isSafeInteger(units) || units === 0)
        throw new CliError(`--units ${JSON.stringify(values['units'])}: must be a non-zero integer`, 2);
      const at = (values['at'] as string | undefined) ?? new Date().toISOString();
      if (Number.isNaN(Date.parse(at))) throw new CliError(`--at ${JSON.stringify(at)}: must be an ISO-8601 instant`, 2);
      const data = await callAdmin(
        context.target(),
        'mutation($input: CorrectionInput!) { postCorrection(input: $input) { eventId periodStart isNew } }',
        {
          input: { id: values['id'], tenant: context.positionals[0], at, units, reason: values['reason'] },
        },
      );
      const result = data['postCorrection'] as Record<string, unknown>;
      context.io.out(context.isJson ? JSON.stringify(result, null, 2) : table([result], ['eventId', 'periodStart', 'isNew']));
    },
  },
});

export const auditLogCommand: Command = commandWithSubcommands('audit-log', 'the admin audit log: who changed what, when (newest first)', {
  '': {
    usage: '[--tenant <tenant>] [--target <prefix>] [--token-id <id>] [--action <action>] [--first <n>] [--after <cursor>]',
    summary: 'every admin change: token id, action, target, before, after',
    positionals: [],
    options: {
      tenant: { type: 'string' },
      target: { type: 'string' },
      'token-id': { type: 'string' },
      action: { type: 'string' },
      first: { type: 'string' },
      after: { type: 'string' },
    },
    async run(context) {
      const { values } = context;
      if (values['tenant'] !== undefined && values['target'] !== undefined)
        throw new CliError('--tenant and --target exclude each other', 2);
      const target = typeof values['tenant'] === 'string' ? `tenant/${values['tenant']}` : values['target'];
      const data = await callAdmin(
        context.target(),
        `query($tokenId: String, $action: String, $target: String, $first: Int, $after: String) {
          auditLog(tokenId: $tokenId, action: $action, target: $target, first: $first, after: $after) { items { id tokenId action target before after at } cursor } }`,
        {
          tokenId: values['token-id'],
          action: values['action'],
          target,
          first: intFlag(values, 'first', { isRequired: false, min: 1 }) ?? 50,
          after: values['after'],
        },
      );
      const page = data['auditLog'] as { items: Record<string, unknown>[]; cursor: string | null };
      context.io.out(
        context.isJson ? JSON.stringify(page, null, 2) : table(page.items, ['at', 'tokenId', 'action', 'target', 'before', 'after']),
      );
      if (!context.isJson && page.cursor !== null) context.io.out(`next page: --after ${page.cursor}`);
    },
  },
});
