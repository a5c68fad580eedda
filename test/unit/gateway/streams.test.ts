import { describe, expect, it } from 'vitest';
import { multipartBoundary, readEventStream, readMultipart } from '../../../src/gateway/streams.js';
import { mergeIncremental } from '../../../src/graphql/plugins/streamed-results.js';

/** A body delivered in chunks of `size` characters (a delimiter or a JSON text split anywhere). */
function chunked(text: string, size: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) controller.close();
      else {
        controller.enqueue(bytes.slice(at, at + size));
        at += size;
      }
    },
  });
}

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

// as yoga writes it: boundary "-", each part with its headers, a closing delimiter
const YOGA_MULTIPART =
  '\r\n---\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 40\r\n\r\n{"data":{"title":"a---b\\r\\n"},"hasNext":true}\r\n---' +
  '\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{"incremental":[{"data":{"n":1},"path":[]}],"hasNext":false}\r\n-----\r\n';

describe('reading an upstream stream', () => {
  it.each([1, 7, 4096])('reads multipart parts whole however the body is chunked (%i bytes)', async (size) => {
    const parts = await all(readMultipart(chunked(YOGA_MULTIPART, size), multipartBoundary('multipart/mixed; boundary="-"')));
    expect(parts).toEqual([
      { data: { title: 'a---b\r\n' }, hasNext: true },
      { incremental: [{ data: { n: 1 }, path: [] }], hasNext: false },
    ]);
  });

  it('skips heartbeat parts and takes an unquoted boundary', async () => {
    const body =
      '--graphql\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{"data":{"a":1}}\r\n--graphql--\r\n';
    expect(await all(readMultipart(chunked(body, 5), multipartBoundary('multipart/mixed;boundary=graphql')))).toEqual([{ data: { a: 1 } }]);
  });

  it.each([1, 9, 4096])('reads SSE next events until complete, skipping pings (%i-byte chunks)', async (size) => {
    const body =
      ':\n\nevent: next\ndata: {"data":{"a":1}}\n\n:\n\nevent: next\ndata: {"data":{"a":2}}\n\nevent: complete\ndata:\n\nevent: next\ndata: {"data":{"a":3}}\n\n';
    expect(await all(readEventStream(chunked(body, size)))).toEqual([{ data: { a: 1 } }, { data: { a: 2 } }]);
  });
});

describe('mergeIncremental', () => {
  it('merges @defer data at its path and appends @stream items to their list', () => {
    const whole: { data?: Record<string, unknown> | null } = {};
    mergeIncremental(whole, { data: { books: [{ title: 'a' }, { title: 'b' }] } });
    mergeIncremental(whole, { incremental: [{ data: { author: { name: 'x' } }, path: ['books', 1] }] });
    mergeIncremental(whole, { incremental: [{ items: [{ title: 'c' }], path: ['books', 2] }] });
    expect(whole.data).toEqual({ books: [{ title: 'a' }, { title: 'b', author: { name: 'x' } }, { title: 'c' }] });
  });
});
