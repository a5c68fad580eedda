/**
 * `tollgate plans apply|diff|list|versions` (and `rollout|promote|abort`, rollout-commands.ts): plans as versioned data through the admin API. A plan file
 * is JSON or YAML (`.yaml`/`.yml`); the API validates it whole and lists every problem with its path.
 */
import { callAdmin, table } from './admin-client.js';
import type { Command } from './command.js';
import { planText } from './plan-file.js';
import { rolloutSubcommands } from './rollout-commands.js';
import { commandWithSubcommands, type SubcommandContext } from './subcommands.js';

const PLAN_FIELDS = 'id version problem appliedAt';

function printPlans(context: SubcommandContext, plans: Record<string, unknown>[]): void {
  context.io.out(context.isJson ? JSON.stringify(plans, null, 2) : table(plans, ['id', 'version', 'appliedAt', 'problem']));
}

export const plansCommand: Command = commandWithSubcommands(
  'plans',
  'plans as versioned data: apply, diff, list, versions, shadow rollouts',
  {
    apply: {
      usage: 'apply <plan.json|plan.yaml>',
      summary: 'store a new version of a plan (its version must be greater than the stored one); every API instance serves it at once',
      positionals: ['<file>'],
      async run(context) {
        const data = await callAdmin(context.target(), `mutation($plan: String!) { applyPlan(plan: $plan) { ${PLAN_FIELDS} } }`, {
          plan: planText(context.positionals[0] ?? ''),
        });
        printPlans(context, [data['applyPlan'] as Record<string, unknown>]);
      },
    },
    diff: {
      usage: 'diff <plan.json|plan.yaml>',
      summary: 'what applying the file would change against the stored version (nothing is stored)',
      positionals: ['<file>'],
      async run(context) {
        const data = await callAdmin(
          context.target(),
          'query($plan: String!) { planDiff(plan: $plan) { id storedVersion newVersion changes { path before after } } }',
          { plan: planText(context.positionals[0] ?? '') },
        );
        const diff = data['planDiff'] as {
          id: string;
          storedVersion: number | null;
          newVersion: number;
          changes: Record<string, unknown>[];
        };
        if (context.isJson) {
          context.io.out(JSON.stringify(diff, null, 2));
          return;
        }
        context.io.out(`plan ${diff.id}: stored v${diff.storedVersion ?? '-'} -> v${diff.newVersion}`);
        context.io.out(table(diff.changes, ['path', 'before', 'after']));
      },
    },
    list: {
      usage: 'list',
      summary: 'every stored plan, its version, and why it does not validate if it does not',
      positionals: [],
      async run(context) {
        printPlans(context, (await callAdmin(context.target(), `{ plans { ${PLAN_FIELDS} } }`))['plans'] as Record<string, unknown>[]);
      },
    },
    versions: {
      usage: 'versions <plan>',
      summary: 'every version of the plan applied through the admin API (--json: with their bodies)',
      positionals: ['<plan>'],
      async run(context) {
        const data = await callAdmin(context.target(), `query($id: String!) { planVersions(id: $id) { ${PLAN_FIELDS} body } }`, {
          id: context.positionals[0],
        });
        printPlans(context, data['planVersions'] as Record<string, unknown>[]);
      },
    },
    ...rolloutSubcommands,
  },
);
