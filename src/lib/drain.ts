// Waiting for a writable stream to take more: its 'drain', or its 'close' (a stream that
// closed will never drain, and a writer waiting on it must not wait forever).

import type { EventEmitter } from 'node:events';

export function drainOrClose(w: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.once('drain', done);
    w.once('close', done);
  });
}
