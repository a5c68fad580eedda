/**
 * The request body cap, in front of yoga on the Node server: a body larger
 * than `maxBodyBytes` is refused with 413 `REQUEST_TOO_LARGE` before anything
 * parses it. A declared `Content-Length` over the cap is refused without
 * reading a byte; a body without one (chunked) is counted while it is read and
 * the read stops at the first chunk past the cap. Either way the connection is
 * closed shortly after the answer (see `refuseTooLarge`), so the rest of the
 * body is never read.
 *
 * A body within the cap is read here (at most `maxBodyBytes` in memory per
 * request) and handed to yoga as the request's `body` (the way a Node body
 * parser hands it), so yoga never reads the socket itself. Bodies are read
 * before identification: an unknown caller can make the process read at most
 * the cap, as it could before (Node reads and discards an unread body).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';

/** Options of {@link limitRequestBodies}. */
export interface BodyLimitOptions {
  /** Largest request body accepted, bytes. */
  maxBodyBytes: number;
  /** Called once per refused request (e.g. to count it). */
  onRefused?: () => void;
  /** How long a refused connection stays open after its answer, unless the client closes it first, ms. @default 1000 */
  lingerMs?: number;
}

/**
 * The answer to an oversized body: a GraphQL error response, as the edge's other refusals, sent at
 * once and complete (Content-Length). The response is ended, and so the socket closed, only after
 * `lingerMs` or when the client closes first: closing a socket that still has unread bytes resets
 * the connection (TCP RST), and a reset can destroy the answer before the client has read it. In
 * the meantime nothing more is read (the body is paused, so TCP flow control stops the sender).
 */
function refuseTooLarge(res: ServerResponse, input: { maxBodyBytes: number; lingerMs: number }): void {
  const body = JSON.stringify({
    errors: [
      {
        message: `the request body is larger than ${input.maxBodyBytes} bytes`,
        extensions: { code: 'REQUEST_TOO_LARGE', max: input.maxBodyBytes },
      },
    ],
  });
  res.writeHead(413, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // the rest of the body is not read: this connection cannot carry another request
    connection: 'close',
  });
  res.write(body);
  const timer = setTimeout(() => res.end(), input.lingerMs);
  res.once('close', () => clearTimeout(timer));
}

/** Whether a request of this method carries a body to read (GET and HEAD never do, per yoga). */
function hasBody(req: IncomingMessage): boolean {
  return req.method !== 'GET' && req.method !== 'HEAD';
}

/** The Node server's handlers of `request` and `checkContinue` events. */
export interface BodyLimitedHandlers {
  request: RequestListener;
  /** `Expect: 100-continue`: a declared body over the cap is refused before the client sends it. */
  checkContinue: RequestListener;
}

/** Whether the request declares (`Content-Length`) a body larger than the cap. */
function isDeclaredOver(req: IncomingMessage, maxBodyBytes: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > maxBodyBytes;
}

/**
 * Wraps a Node request listener (yoga's `requestListener`) with the body cap:
 * `server.on('request', handlers.request)` and `server.on('checkContinue', handlers.checkContinue)`.
 * @throws RangeError when `maxBodyBytes` is not a positive integer
 */
export function limitRequestBodies(listener: RequestListener, options: BodyLimitOptions): BodyLimitedHandlers {
  const { maxBodyBytes, onRefused } = options;
  const lingerMs = options.lingerMs ?? 1_000;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1)
    throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  const refuse = (req: IncomingMessage, res: ServerResponse): void => {
    onRefused?.();
    // stop reading: the socket is closed once the answer is flushed, and nothing more is buffered meanwhile
    req.pause();
    req.removeAllListeners('data');
    refuseTooLarge(res, { maxBodyBytes, lingerMs });
  };
  const request: RequestListener = (req, res) => {
    if (!hasBody(req)) {
      listener(req, res);
      return;
    }
    if (isDeclaredOver(req, maxBodyBytes)) {
      refuse(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let isRefused = false;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBodyBytes) {
        isRefused = true;
        chunks.length = 0;
        refuse(req, res);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (isRefused) return;
      // yoga (@whatwg-node/server) reads a stream in `body` as the request's body, as from a body parser.
      // A stream, not the Buffer: it counts a body's own keys, and a Buffer has one per byte.
      Object.assign(req, { body: Readable.from([Buffer.concat(chunks, received)], { objectMode: false }) });
      listener(req, res);
    });
    // a client that goes away mid-body gets no answer; the socket is already closing
    req.once('error', () => undefined);
  };
  const checkContinue: RequestListener = (req, res) => {
    if (isDeclaredOver(req, maxBodyBytes)) {
      refuse(req, res);
      return;
    }
    res.writeContinue();
    request(req, res);
  };
  return { request, checkContinue };
}
