// An outgoing connection that must be ready (TCP connected, or the TLS handshake done)
// within a deadline: the C-MOVE SCU and both legs of `tresor edge` open sockets this way.
// TCP_NODELAY is set on every such socket: DICOM's small PDUs (A-ASSOCIATE, C-STORE-RSP)
// otherwise wait on Nagle + delayed ACK (../shared/bench/CLIENTS.md, the 40 ms trap).

import type net from 'node:net';

export interface ConnectDeadline {
  timeoutMs: number;
  /** The error for a socket not ready in time. */
  onTimeout: () => Error;
  /** The error for a socket that failed (refused, reset, TLS alert, bad certificate). */
  onError: (e: NodeJS.ErrnoException) => Error;
}

/** Resolves with `socket` once it emits `ready` ('connect' or 'secureConnect'); destroys it otherwise. */
export function socketReady<S extends net.Socket>(socket: S, ready: 'connect' | 'secureConnect', d: ConnectDeadline): Promise<S> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(d.onTimeout());
    }, d.timeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(d.onError(e));
    });
  });
}
