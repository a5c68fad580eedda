/**
 * Reading an upstream's streamed answers, payload by payload, as they arrive:
 * `multipart/mixed` (incremental delivery, `@defer`/`@stream`) and
 * `text/event-stream` (subscriptions over SSE, the "distinct connections"
 * protocol yoga and Hive Gateway serve). Each payload is passed on as the
 * upstream wrote it (no merging), so the client sees the upstream's own
 * incremental format. Pure stream parsing: no timeouts, no retries.
 */
import type { ExecutionResult } from 'graphql';

/** The `boundary` parameter of a multipart content type (RFC 2046), `-` when it names none. */
export function multipartBoundary(contentType: string): string {
  const match = /boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2] ?? '-';
}

async function* textChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** One part's JSON body, or undefined for an empty part or a heartbeat (`{}`). */
function partBody(part: string): ExecutionResult | undefined {
  const headersEnd = part.indexOf('\r\n\r\n');
  const body = (headersEnd < 0 ? '' : part.slice(headersEnd + 4)).trim();
  if (body === '' || body === '{}') return undefined;
  return JSON.parse(body) as ExecutionResult;
}

/**
 * The JSON parts of a `multipart/mixed` body, each as soon as the delimiter after it arrived. Delimiters are
 * matched with their leading CRLF, which JSON cannot hold unescaped, so a part's text never ends a part.
 * @throws SyntaxError when a part is not JSON
 */
export async function* readMultipart(body: ReadableStream<Uint8Array>, boundary: string): AsyncGenerator<ExecutionResult> {
  const delimiter = `\r\n--${boundary}`;
  let buffer = '\r\n';
  for await (const text of textChunks(body)) {
    buffer += text;
    for (;;) {
      const start = buffer.indexOf(delimiter);
      const next = start < 0 ? -1 : buffer.indexOf(delimiter, start + delimiter.length);
      if (next < 0) break;
      const part = buffer.slice(start + delimiter.length, next);
      buffer = buffer.slice(next);
      const payload = partBody(part);
      if (payload !== undefined) yield payload;
    }
  }
}

/**
 * The `next` events' data of a `text/event-stream` body, until its `complete` event or its end. Comments
 * (`:` pings) are skipped; an event without a type is a `next`.
 * @throws SyntaxError when an event's data is not JSON
 */
export async function* readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ExecutionResult> {
  let buffer = '';
  for await (const text of textChunks(body)) {
    buffer += text.replace(/\r\n?/g, '\n');
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      let event = 'next';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (event === 'complete') return;
      if (event === 'next' && data.length > 0 && data.join('') !== '') yield JSON.parse(data.join('\n')) as ExecutionResult;
    }
  }
}
