/**
 * `tollgate plans rollout|promote|abort`: a new plan version's changed limits run in shadow beside the enforced
 * version for a set time (`--for 1h`), what they would have denied (`rollout status`), then promoted or aborted.
 */
import { CliError, callAdmin, table } from './admin-client.js';
import { planText } from './plan-file.js';
import type { Subcommand, SubcommandContext } from './subcommands.js';

const ROLLOUT_FIELDS =
  'plan fromVersion toVersion status startedAt endsAt endedAt limits { limit shadowId wouldDeny hours { hour wouldDeny } } ' +
  'wouldAdmit removedLimits { limit wouldAdmit }';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** `90s`, `30m`, `1h`, `2d` or bare seconds, as seconds. @throws CliError (exit 2) */
export function durationSeconds(raw: string | boolean | undefined): number {
  const match = /^(\d{1,9})([smhd]?)$/.exec(typeof raw === 'string' ? raw : '');
  const seconds = match === null ? Number.NaN : Number(match[1]) * (UNIT_SECONDS[match[2] ?? ''] ?? 1);
  if (!Number.isSafeInteger(seconds) || seconds < 1)
    throw new CliError(`--for ${JSON.stringify(raw ?? '')}: a duration such as 90s, 30m, 1h or 2d is required`, 2);
  return seconds;
}

interface RolloutOut {
  plan: string;
  fromVersion: number;
  toVersion: number;
  status: string;
  startedAt: string;
  endsAt: string;
  endedAt: string | null;
  limits: { limit: string; shadowId: string; wouldDeny: number; hours: { hour: string; wouldDeny: number }[] }[];
  wouldAdmit: number;
  removedLimits: { limit: string; wouldAdmit: number }[];
}

function printRollout(context: SubcommandContext, rollout: RolloutOut): void {
  if (context.isJson) {
    context.io.out(JSON.stringify(rollout, null, 2));
    return;
  }
  context.io.out(
    `plan ${rollout.plan}: v${rollout.fromVersion} enforced, v${rollout.toVersion} in shadow; ${rollout.status} ` +
      `(started ${rollout.startedAt}, ${rollout.endedAt === null ? `ends ${rollout.endsAt}` : `ended ${rollout.endedAt}`})`,
  );
  context.io.out(table(rollout.limits, ['limit', 'shadowId', 'wouldDeny']));
  context.io.out(`\nrefused by v${rollout.fromVersion}, admitted by v${rollout.toVersion}: ${rollout.wouldAdmit}`);
  if (rollout.removedLimits.length > 0)
    context.io.out(
      `removed in v${rollout.toVersion} (refusals v${rollout.toVersion} would have admitted):\n${table(rollout.removedLimits, ['limit', 'wouldAdmit'])}`,
    );
  const hours = rollout.limits.flatMap((limit) => limit.hours.map((hour) => ({ limit: limit.limit, ...hour })));
  if (hours.length > 0) context.io.out(`\nwould-deny per hour:\n${table(hours, ['hour', 'limit', 'wouldDeny'])}`);
}

export const rolloutSubcommands: Record<string, Subcommand> = {
  rollout: {
    usage: 'rollout <plan.json|plan.yaml> --for <90s|30m|1h|2d>  |  rollout status <plan>',
    summary: "run a new version's changed limits in shadow beside the enforced one for a while; `status`: what they would have denied",
    positionals: ['<file|status>', '[<plan>]'],
    options: { for: { type: 'string' } },
    async run(context) {
      const [first, second] = context.positionals;
      if (first === 'status') {
        if (second === undefined) throw new CliError('usage: tollgate plans rollout status <plan>', 2);
        const data = await callAdmin(context.target(), `query($plan: String!) { rollout(plan: $plan) { ${ROLLOUT_FIELDS} } }`, {
          plan: second,
        });
        const rollout = data['rollout'] as RolloutOut | null;
        if (rollout === null) throw new CliError(`plan ${second} has no rollout`, 1);
        printRollout(context, rollout);
        return;
      }
      if (second !== undefined) throw new CliError('expected one plan file (or: rollout status <plan>)', 2);
      const forSeconds = durationSeconds(context.values['for']);
      const data = await callAdmin(
        context.target(),
        `mutation($plan: String!, $for: Int!) { startRollout(plan: $plan, forSeconds: $for) { ${ROLLOUT_FIELDS} } }`,
        { plan: planText(first ?? ''), for: forSeconds },
      );
      printRollout(context, data['startRollout'] as RolloutOut);
    },
  },
  promote: {
    usage: 'promote <plan>',
    summary: "the running rollout's version becomes the enforced one (a plan apply: every API instance serves it at once)",
    positionals: ['<plan>'],
    async run(context) {
      const data = await callAdmin(context.target(), 'mutation($plan: String!) { promoteRollout(plan: $plan) { id version appliedAt } }', {
        plan: context.positionals[0],
      });
      const plan = data['promoteRollout'] as Record<string, unknown>;
      context.io.out(context.isJson ? JSON.stringify(plan, null, 2) : table([plan], ['id', 'version', 'appliedAt']));
    },
  },
  abort: {
    usage: 'abort <plan>',
    summary: 'ends the running rollout: its shadow limits are removed, the enforced version stays',
    positionals: ['<plan>'],
    async run(context) {
      const data = await callAdmin(context.target(), `mutation($plan: String!) { abortRollout(plan: $plan) { ${ROLLOUT_FIELDS} } }`, {
        plan: context.positionals[0],
      });
      printRollout(context, data['abortRollout'] as RolloutOut);
    },
  },
};
