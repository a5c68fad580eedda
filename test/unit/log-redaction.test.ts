/**
 * The process logger never writes a secret, whatever shape it is logged in: account settings with a webhook
 * secret (nested or not), API keys inside messages and error messages and stacks, URL passwords and tokens in
 * query strings, authorization headers, child-logger bindings. What is not secret stays readable.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/shared/index.js';
import { redactString } from '../../src/shared/redact.js';

const API_KEY = `tg_${'A1b2C3d4'.repeat(5)}xyz`;
const WEBHOOK_SECRET = 'whsec-9f8e7d6c5b4a39281706';
const URL_PASSWORD = 'pa55-word-4711';
const QUERY_TOKEN = 'qtok-31415926535';

function capture(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', name: 'redaction-test', destination: { write: (line) => void lines.push(line) } });
  return { lines, logger };
}

const SECRETS = [API_KEY, WEBHOOK_SECRET, URL_PASSWORD, QUERY_TOKEN];

describe('log redaction', () => {
  it('masks secret-bearing fields at any depth and any name, and secrets inside any string', () => {
    const { lines, logger } = capture();
    const account = {
      tenant: 'acme',
      webhookUrl: `https://hooks.example.com/in?token=${QUERY_TOKEN}&tenant=acme`,
      webhookSecret: WEBHOOK_SECRET,
      hasWebhookSecret: true,
    };
    logger.info({ account }, 'account stored');
    logger.info({ webhookSecret: WEBHOOK_SECRET, settings: { nested: { deeper: { clientSecret: WEBHOOK_SECRET } } } }, 'nested');
    logger.warn({ headers: { 'x-api-key': API_KEY, authorization: `Bearer ${API_KEY}`, cookie: `session=${API_KEY}` } }, 'headers');
    logger.error(
      { err: new Error(`key ${API_KEY} refused`, { cause: new Error(`redis://default:${URL_PASSWORD}@redis:6379 down`) }) },
      'error',
    );
    logger.info({ args: [`POST https://hooks.example.com/in?token=${QUERY_TOKEN}`, { apiKey: API_KEY }] }, 'yoga');
    logger.info({}, `a message naming ${API_KEY}`);
    logger.child({ key: API_KEY, password: URL_PASSWORD }).info({}, 'child');
    const output = lines.join('');
    expect(lines).toHaveLength(7);
    for (const secret of SECRETS) expect(output, secret).not.toContain(secret);
    expect(output).toContain('[redacted]');
  });

  it('keeps what is not a secret: ids, hashes, counts, flags, the rest of a URL and of a message', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        tenant: 'acme',
        keyId: 'k1',
        tokens: 5,
        tokenHash: 'abc123',
        hasWebhookSecret: true,
        url: 'https://hooks.example.com/in?tenant=acme',
      },
      'kept',
    );
    const line = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(line).toMatchObject({
      tenant: 'acme',
      keyId: 'k1',
      tokens: 5,
      tokenHash: 'abc123',
      hasWebhookSecret: true,
      url: 'https://hooks.example.com/in?tenant=acme',
      msg: 'kept',
    });
  });

  it('masks only the secret part of a string', () => {
    expect(redactString(`redis://default:${URL_PASSWORD}@redis:6379/2`)).toBe('redis://default:[redacted]@redis:6379/2');
    expect(redactString(`https://h.example/x?a=1&token=${QUERY_TOKEN}&b=2`)).toBe('https://h.example/x?a=1&token=[redacted]&b=2');
    expect(redactString(`invalid API key ${API_KEY}.`)).toBe('invalid API key tg_[redacted].');
    expect(redactString('Bearer abcdefghijklmnop')).toBe('Bearer [redacted]');
    expect(redactString('tenant acme over 80 % of month')).toBe('tenant acme over 80 % of month');
  });
});
