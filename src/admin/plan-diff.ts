/**
 * What changes between two versions of a plan, path by path (pure). Arrays of objects with an `id`
 * (a plan's limits) are compared by id, so `limits[burst].algorithm.capacity` names the change whatever
 * the order; other arrays and scalars are compared as values.
 */

export interface PlanChange {
  /** e.g. `maxCostPerOperation`, `limits[burst].algorithm.capacity`, `limits[day]` (added or removed). */
  path: string;
  /** JSON of the stored value (null: added). */
  before: string | null;
  /** JSON of the new value (null: removed). */
  after: string | null;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const isIdArray = (value: unknown): value is Record<string, unknown>[] =>
  Array.isArray(value) && value.every((entry) => isObject(entry) && typeof entry['id'] === 'string');

const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function diffInto(changes: PlanChange[], path: string, before: unknown, after: unknown): void {
  if (isIdArray(before) && isIdArray(after)) {
    const byId = (entries: Record<string, unknown>[]): Map<string, unknown> =>
      new Map(entries.map((entry) => [String(entry['id']), entry]));
    const old = byId(before);
    const next = byId(after);
    for (const id of new Set([...old.keys(), ...next.keys()])) diffInto(changes, `${path}[${id}]`, old.get(id), next.get(id));
    return;
  }
  if (isObject(before) && isObject(after)) {
    for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      if (key === 'version') continue;
      diffInto(changes, join(path, key), before[key], after[key]);
    }
    return;
  }
  if (json(before) !== json(after)) changes.push({ path, before: json(before), after: json(after) });
}

/** Every change from `before` (undefined: no stored plan) to `after`; the plan's own version is not a change. */
export function diffPlans(before: unknown, after: unknown): PlanChange[] {
  const changes: PlanChange[] = [];
  if (before === undefined) return [{ path: '', before: null, after: json(after) }];
  diffInto(changes, '', before, after);
  return changes;
}
