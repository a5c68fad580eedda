/**
 * A TCP proxy in front of Redis that loses replies: every command reaches
 * Redis (so a script runs and writes), but every `dropEvery`-th chunk Redis
 * sends back is not forwarded; instead both sides of that connection are
 * destroyed, as a network that resets a connection mid-reply would. The
 * client sees its connection reset with calls in flight.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from '../../infra/services.js';

export interface LossyProxy {
  port: number;
  /** Replies (chunks) dropped so far. */
  dropped: () => number;
  /** Replies (chunks) forwarded so far. */
  forwarded: () => number;
  /** Starts (or stops, with 0) dropping every `n`-th reply chunk. */
  dropEvery: (n: number) => void;
  close: () => Promise<void>;
}

/** Listens on a free loopback port and forwards to `127.0.0.1:upstreamPort`. */
export async function startLossyProxy(upstreamPort: number): Promise<LossyProxy> {
  const sockets = new Set<Socket>();
  let every = 0;
  let seen = 0;
  let dropped = 0;
  let forwarded = 0;
  const server: Server = createServer((downstream) => {
    const upstream = connect(upstreamPort, '127.0.0.1');
    sockets.add(downstream).add(upstream);
    const close = (): void => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      seen += 1;
      if (every > 0 && seen % every === 0) {
        dropped += 1;
        close();
        return;
      }
      forwarded += 1;
      downstream.write(chunk);
    });
    downstream.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  const port = await freePort();
  await new Promise<void>((resolveListen) => server.listen(port, '127.0.0.1', resolveListen));
  return {
    port,
    dropped: () => dropped,
    forwarded: () => forwarded,
    dropEvery: (n) => {
      every = n;
      seen = 0;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolveClose) => server.close(resolveClose));
    },
  };
}
