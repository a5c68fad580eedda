/**
 * A real local HTTP webhook receiver for warning tests: it verifies the
 * `Tollgate-Signature` (HMAC-SHA256 over `<t>.<body>`), dedupes by
 * `Idempotency-Key` like a well-behaved receiver, and counts what it saw.
 * It can fail the first N requests (500) to exercise retries.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface ReceivedWarning {
  idempotencyKey: string;
  body: Record<string, unknown>;
  isSignatureValid: boolean;
}

export interface WebhookReceiver {
  url: string;
  /** Every request answered (any status), in arrival order. */
  requests: ReceivedWarning[];
  /** Requests answered 500 on purpose. */
  failed: number;
  /** Accepted (2xx) requests per idempotency key; the first one is processed, later ones are duplicates. */
  accepted: Map<string, number>;
  /** Processed deliveries: the first accepted request of each key. */
  processed: ReceivedWarning[];
  close(): Promise<void>;
}

export function verifySignature(secret: string, header: string, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (match === null) return false;
  const expected = createHmac('sha256', secret).update(`${match[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2] ?? '', 'hex'));
}

export async function startWebhookReceiver(input: { secret: string; failFirst?: number }): Promise<WebhookReceiver> {
  let toFail = input.failFirst ?? 0;
  const receiver: Omit<WebhookReceiver, 'url' | 'close'> = { requests: [], failed: 0, accepted: new Map(), processed: [] };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const key = String(request.headers['idempotency-key'] ?? '');
      const received: ReceivedWarning = {
        idempotencyKey: key,
        body: JSON.parse(raw) as Record<string, unknown>,
        isSignatureValid: verifySignature(input.secret, String(request.headers['tollgate-signature'] ?? ''), raw),
      };
      receiver.requests.push(received);
      if (toFail > 0) {
        toFail -= 1;
        receiver.failed += 1;
        response.writeHead(500).end();
        return;
      }
      const seen = receiver.accepted.get(key) ?? 0;
      receiver.accepted.set(key, seen + 1);
      if (seen === 0) receiver.processed.push(received);
      response.writeHead(seen === 0 ? 201 : 200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    ...receiver,
    get requests() {
      return receiver.requests;
    },
    get failed() {
      return receiver.failed;
    },
    url: `http://127.0.0.1:${port}/hooks/tollgate`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
