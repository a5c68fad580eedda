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

export interface ReadinessReport {
  isReady: boolean;
  checks: Record<string, { isOk: boolean; latencyMs: number; code?: string }>;
}

/** Runs every check in parallel, each within `timeoutMs`. */
export async function runReadiness(checks: ReadinessCheck[], timeoutMs: number): Promise<ReadinessReport> {
  const entries = await Promise.all(
    checks.map(async (check) => {
      const startedAt = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check.run(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
          }),
        ]);
        return [check.name, { isOk: true, latencyMs: Math.round(performance.now() - startedAt) }] as const;
      } catch (error) {
        const code =
          error instanceof Error && error.message === 'timeout'
            ? 'TIMEOUT'
            : typeof (error as { code?: unknown }).code === 'string'
              ? String((error as { code: string }).code)
              : 'UNAVAILABLE';
        return [check.name, { isOk: false, latencyMs: Math.round(performance.now() - startedAt), code }] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { isReady: entries.every(([, result]) => result.isOk), checks: Object.fromEntries(entries) };
}
