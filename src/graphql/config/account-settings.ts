/**
 * Account settings as the admin API stores them: checked against the plans of the tenant's keys first
 * (`accountPlanProblems`: the plan says the billing unit, the account its anchor day and zone), so an
 * account never closes periods its requests were not counted in.
 *
 * An existing account's billing period does not change (its webhook and price do): the API would count
 * the rest of the open period in the new calendar's partitions at once, while the account workflow
 * closes the old calendar's period and starts the new one at its end, so usage between the change and
 * that end would sit in a partition no statement reads. A change that takes effect at the next period
 * boundary needs a period model with a transition; it is not built.
 */
import { validateAccount, type AccountSettings, type AccountStore } from '../../billing/index.js';
import type { PeriodSpec } from '../../decider/index.js';
import { ValidationError } from '../../shared/index.js';
import { accountPlanProblems, type Plan } from '../plans.js';
import type { DynamoConfigStore } from './dynamo-config-store.js';

/**
 * Validates the settings whole, then against the plans of the tenant's keys, then stores them (the config
 * version moves: every API instance decides the tenant's requests in the new calendar).
 * @throws ValidationError `ACCOUNT_INVALID` listing every problem (`details.problems`), nothing stored
 * @throws DependencyError `DYNAMODB_UNAVAILABLE`
 */
export async function putAccountSettings(input: {
  accounts: AccountStore;
  config: DynamoConfigStore;
  settings: AccountSettings;
  nowMs: number;
}): Promise<void> {
  const settings = validateAccount(input.settings);
  const planIds = new Set<string>(await input.config.tenantPlanIds(settings.tenant));
  const plans: Plan[] = [];
  for (const stored of await input.config.listPlans()) {
    if (stored.isValid && planIds.has(stored.plan.id)) plans.push(stored.plan);
  }
  const problems = accountPlanProblems(settings.billingPeriod, plans);
  const existing = await input.accounts.get(settings.tenant);
  if (existing !== undefined && !isSamePeriod(existing.billingPeriod, settings.billingPeriod)) {
    problems.push(
      `billingPeriod cannot change once the account exists (it is ${describe(existing.billingPeriod)}): ` +
        'usage of the open period would be counted where no statement reads it',
    );
  }
  if (problems.length > 0) {
    throw new ValidationError('ACCOUNT_INVALID', `invalid account settings of ${settings.tenant}:\n${problems.join('\n')}`, {
      details: { problems },
    });
  }
  await input.accounts.put(settings, input.nowMs);
}

const describe = (period: PeriodSpec): string =>
  period.unit === 'second' ? `${period.lengthSeconds ?? 1} s` : `${period.unit}, anchor day ${period.anchorDay}, ${period.timeZone}`;

function isSamePeriod(a: PeriodSpec, b: PeriodSpec): boolean {
  return a.unit === b.unit && (a.lengthSeconds ?? 1) === (b.lengthSeconds ?? 1) && a.anchorDay === b.anchorDay && a.timeZone === b.timeZone;
}
