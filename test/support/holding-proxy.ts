/**
 * A TCP proxy in front of a real service (Redis) that can hold what clients
 * send: while held, bytes from clients are kept in order and forwarded on
 * release, so commands sent meanwhile wait, unanswered and unlost, as behind
 * a stalled link. Replies always flow. For overload tests that need requests
 * to stay in flight until the test lets them finish.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface HoldingProxy {
  port: number;
  /** Stops forwarding client bytes (they are queued). */
  hold(): void;
  /** Forwards what was queued, in order, and everything after it. */
  release(): void;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

/** Listens on a free loopback port and forwards each connection to `target`. */
export async function startHoldingProxy(target: { host: string; port: number }): Promise<HoldingProxy> {
  let isHeld = false;
  const links = new Set<{ client: Socket; upstream: Socket; queued: Buffer[] }>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const link = { client, upstream, queued: [] as Buffer[] };
    links.add(link);
    client.on('data', (chunk: Buffer) => {
      if (isHeld) link.queued.push(chunk);
      else upstream.write(chunk);
    });
    upstream.pipe(client);
    const drop = (): void => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('error', drop);
    upstream.on('error', drop);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    port: address.port,
    hold: () => {
      isHeld = true;
    },
    release: () => {
      isHeld = false;
      for (const link of links) {
        for (const chunk of link.queued.splice(0)) link.upstream.write(chunk);
      }
    },
    close: async () => {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}
