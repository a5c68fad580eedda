/**
 * Readiness of an API instance: each dependency answers a real call (Redis runs
 * a script, DynamoDB describes the ledger table, Temporal answers its health
 * check), each bounded by a timeout so /ready never hangs. Failures report the
 * component and a stable code, never internal error text.
 */
export interface ReadinessCheck {
  name: string;
  run: () => Promise<void>;
}

export interface CheckResult {
  isOk: boolean;
  latencyMs: number;
  /** Our error code, `TIMEOUT`, or `UNAVAILABLE` for foreign errors. */
  code?: string;
}

export interface ReadinessReport {
  isReady: boolean;
  checks: Record<string, CheckResult>;
  /** What an operator should see besides the checks (e.g. the spool's size and age); never decides readiness. */
  detail?: Record<string, unknown>;
}

const TIMED_OUT = Symbol('timed out');

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return 'UNAVAILABLE';
}

async function runOne(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  const startedAt = performance.now();
  const latency = (): number => Math.round(performance.now() - startedAt);
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      check.run(),
      new Promise<typeof TIMED_OUT>((resolveTimeout) => {
        timer = setTimeout(() => resolveTimeout(TIMED_OUT), timeoutMs);
      }),
    ]);
    return outcome === TIMED_OUT ? { isOk: false, latencyMs: latency(), code: 'TIMEOUT' } : { isOk: true, latencyMs: latency() };
  } catch (error) {
    return { isOk: false, latencyMs: latency(), code: errorCode(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check in parallel, each within `timeoutMs`; `detail` (read after the checks) is reported as is. */
export async function runReadiness(
  checks: ReadinessCheck[],
  timeoutMs: number,
  detail?: () => Record<string, unknown>,
): Promise<ReadinessReport> {
  const results = await Promise.all(checks.map((check) => runOne(check, timeoutMs)));
  const report: ReadinessReport = { isReady: results.every((result) => result.isOk), checks: {} };
  if (detail !== undefined) report.detail = detail();
  results.forEach((result, index) => {
    const name = checks[index]?.name;
    if (name !== undefined) report.checks[name] = result;
  });
  return report;
}
