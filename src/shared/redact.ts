/**
 * What keeps secrets out of log lines, whatever shape they travel in. A path list (pino's `redact`) misses any
 * field it does not name — a webhook secret under `account.webhookSecret`, a key inside an error message — so
 * every logged object is walked instead:
 * - a field whose name says it holds a secret (`secret`, `password`, `token`, `authorization`, `cookie`,
 *   `apiKey`, `credential`, `privateKey`, `signature`, in any case and any position: `webhookSecret`,
 *   `x-api-key`) has its value replaced, unless the value is a number or a boolean (`tokens: 5`) or the name
 *   says it is only a reference to one (`keyId`, `tokenHash`, `hasWebhookSecret`);
 * - every string anywhere (messages, error messages and stacks included) has tollgate API keys, bearer
 *   tokens, URL passwords and secret-named query parameters masked.
 */

export const REDACTED = '[redacted]';

const SECRET_NAME = /secret|passw(or)?d|token|authorization|cookie|api[-_]?key|credential|private[-_]?key|signature/i;
/** Names that refer to a secret without holding it. */
const REFERENCE_NAME = /(id|ids|hash|fingerprint|count|length|chars|expires(at)?(ms)?)$|^has[A-Z]|^is[A-Z]/i;

const STRING_PATTERNS: [RegExp, string][] = [
  // tollgate API keys and admin tokens: the prefix and 32+ base64url characters
  [/\btg(a)?_[A-Za-z0-9_-]{32,}/g, `tg$1_${REDACTED}`],
  // Authorization header values written out
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // a URL's password: scheme://user:password@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]+@/gi, `$1${REDACTED}@`],
  // secret-named query parameters
  [/([?&](?:[a-z_-]*(?:token|secret|password|key|signature|sig|auth)[a-z_-]*)=)[^&\s#"']+/gi, `$1${REDACTED}`],
];

/** `text` with every secret-looking part masked. */
export function redactString(text: string): string {
  let out = text;
  for (const [pattern, replacement] of STRING_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name) && !REFERENCE_NAME.test(name);
}

const MAX_DEPTH = 8;

function redactError(error: Error, seen: WeakSet<object>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { type: error.name, message: redactString(error.message) };
  if (error.stack !== undefined) out['stack'] = redactString(error.stack);
  for (const [name, value] of Object.entries(error)) out[name] = redactField(name, value, seen, depth + 1);
  if (error.cause !== undefined) out['cause'] = redactValue(error.cause, seen, depth + 1);
  return out;
}

function redactField(name: string, value: unknown, seen: WeakSet<object>, depth: number): unknown {
  if (isSecretName(name) && value !== null && value !== undefined && typeof value !== 'number' && typeof value !== 'boolean') {
    return REDACTED;
  }
  return redactValue(value, seen, depth);
}

/** A copy of `value` safe to log (see the module comment); cycles and depth beyond 8 are cut. */
export function redactValue(value: unknown, seen: WeakSet<object> = new WeakSet(), depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[too deep]';
  seen.add(value);
  if (value instanceof Error) return redactError(value, seen, depth);
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((item: unknown) => redactValue(item, seen, depth + 1));
  if (value instanceof Map) return redactValue(Object.fromEntries(value), seen, depth + 1);
  if (value instanceof Set) return redactValue([...value], seen, depth + 1);
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) out[name] = redactField(name, field, seen, depth + 1);
  return out;
}

/** `redactValue` for a log line's object (always a plain object back). */
export function redactLogObject(object: Record<string, unknown>): Record<string, unknown> {
  return redactValue(object) as Record<string, unknown>;
}
