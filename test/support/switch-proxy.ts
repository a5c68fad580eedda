/**
 * A TCP proxy in front of a real service (Redis) that can be cut: while cut,
 * every connection through it is reset and new ones are accepted and reset at
 * once, as a network partition between one client and the service would do;
 * restored, it forwards again. Clients that connect to the service directly
 * (the test, a metering worker) never notice.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface SwitchProxy {
  port: number;
  /** Resets every connection through the proxy and every new one until `restore`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** Listens on a free loopback port and forwards each connection to `127.0.0.1:targetPort`. */
export async function startSwitchProxy(targetPort: number): Promise<SwitchProxy> {
  let isCut = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((downstream) => {
    if (isCut) {
      downstream.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(downstream).add(upstream);
    const close = (): void => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    port: address.port,
    cut: () => {
      isCut = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore: () => {
      isCut = false;
    },
    close: async () => {
      isCut = true;
      for (const socket of sockets) socket.destroy();
      await new Promise((resolveClose) => server.close(resolveClose));
    },
  };
}
