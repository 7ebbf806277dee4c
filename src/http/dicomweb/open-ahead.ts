// Stored objects of a multipart WADO-RS response (PS3.18 §10.4.1.1.1), opened one ahead
// of the part being sent: while part i goes out, part i+1's object is opened and its
// first chunk read. Each of those steps is a file-system call on libuv's thread pool
// (open, stat, read); done only when part i+1 starts, they left the socket without
// data between every two parts of a study. One object at most is open ahead, so a
// response still holds a bounded number of chunks whatever the study's size.

import type { Readable } from 'node:stream';

export interface OpenAhead {
  /** Item `i`'s stream (items are taken in increasing order); starts opening the next wanted one. */
  take(i: number): Promise<Readable>;
  /** Destroys a stream opened ahead and not taken (the response ended early or failed). */
  close(): void;
}

/**
 * `wanted(i)`: whether item i is sent from its stored object (a transcoded one is not).
 * `first`: item 0's stream when the caller opened it before answering (open-stored.ts).
 * An open that fails ahead of time fails `take` for that item, where it would have
 * failed anyway: nothing is reported twice or earlier than the part it belongs to.
 */
export function openAhead<T>(items: readonly T[], wanted: (i: number) => boolean, open: (item: T) => Promise<Readable>, first?: Readable): OpenAhead {
  let ahead: { i: number; stream: Promise<Readable> } | undefined;
  let closed = false;

  const openEarly = (from: number) => {
    ahead = undefined;
    for (let j = from; j < items.length; j++) {
      if (!wanted(j)) continue;
      const stream = open(items[j]).then((s) => {
        if (closed) s.destroy();
        // read(0) fills the stream's buffer (its highWaterMark) without taking anything.
        else s.read(0);
        return s;
      });
      stream.catch(() => undefined); // awaited by take(j); a failure surfaces there
      ahead = { i: j, stream };
      return;
    }
  };

  return {
    take(i) {
      let stream: Promise<Readable>;
      if (i === 0 && first) {
        stream = Promise.resolve(first);
        first = undefined;
      } else if (ahead?.i === i) {
        stream = ahead.stream;
      } else {
        // A stream opened ahead for an item skipped over is not needed any more.
        ahead?.stream.then((s) => s.destroy(), () => undefined);
        stream = open(items[i]);
      }
      openEarly(i + 1);
      return stream;
    },
    close() {
      closed = true;
      first?.destroy();
      first = undefined;
      ahead?.stream.then((s) => s.destroy(), () => undefined);
      ahead = undefined;
    },
  };
}
