/**
 * Account settings as the admin API stores them: checked against the plans of the tenant's keys first
 * (`accountPlanProblems`: the plan says the billing unit, the account its anchor day and zone), so an
 * account never closes periods its requests were not counted in.
 */
import { validateAccount, type AccountSettings, type AccountStore } from '../../billing/index.js';
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
  if (problems.length > 0) {
    throw new ValidationError('ACCOUNT_INVALID', `invalid account settings of ${settings.tenant}:\n${problems.join('\n')}`, {
      details: { problems },
    });
  }
  await input.accounts.put(settings, input.nowMs);
}
