// Preparing the next item of a sequence while the current one is used: a retrieve sends
// stored objects one after another (WADO-RS multipart parts, PS3.18 §10.4.1.1.1; C-GET /
// C-MOVE sub-operations, PS3.4 C.4.2–C.4.3), and opening an object (open, stat, the first
// read: file-system calls on libuv's thread pool) only when its turn came left the socket
// idle between every two of them. One item at most is prepared ahead, so a retrieve holds
// a bounded number of open objects whatever its size.

export interface OneAhead<R> {
  /** Item `i` (taken in increasing order); starts preparing the next wanted one. */
  take(i: number): Promise<R>;
  /** Releases what was prepared and not taken (the retrieve ended early or failed). */
  close(): void;
}

export interface OneAheadOptions<T, R> {
  prepare: (item: T) => Promise<R>;
  /** Frees a prepared item that will not be taken (destroys its stream). */
  release: (r: R) => void;
  /** Whether item i is prepared at all (default: every item). */
  wanted?: (i: number) => boolean;
  /** Item 0, when the caller prepared it before starting (e.g. before answering). */
  first?: R;
}

/**
 * A preparation that fails ahead of time fails `take` for that item, where it would have
 * failed anyway: nothing is reported twice or earlier than the item it belongs to, and
 * no rejection is left unhandled.
 */
export function oneAhead<T, R>(items: readonly T[], o: OneAheadOptions<T, R>): OneAhead<R> {
  const wanted = o.wanted ?? (() => true);
  let first = o.first;
  let ahead: { i: number; ready: Promise<R> } | undefined;
  let closed = false;

  const prepareFrom = (from: number) => {
    ahead = undefined;
    for (let j = from; j < items.length; j++) {
      if (!wanted(j)) continue;
      const ready = o.prepare(items[j]).then((r) => {
        if (closed) o.release(r);
        return r;
      });
      ready.catch(() => undefined); // awaited by take(j); a failure surfaces there
      ahead = { i: j, ready };
      return;
    }
  };
  const releaseAhead = () => {
    ahead?.ready.then(o.release, () => undefined);
    ahead = undefined;
  };

  return {
    take(i) {
      let ready: Promise<R>;
      if (i === 0 && first !== undefined) {
        ready = Promise.resolve(first);
        first = undefined;
      } else if (ahead?.i === i) {
        ready = ahead.ready;
      } else {
        // Prepared for an item skipped over: not needed any more.
        releaseAhead();
        ready = o.prepare(items[i]);
      }
      prepareFrom(i + 1);
      return ready;
    },
    close() {
      closed = true;
      if (first !== undefined) o.release(first);
      first = undefined;
      releaseAhead();
    },
  };
}
