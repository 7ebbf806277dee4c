// A retrieve (WADO-RS parts, C-GET/C-MOVE sub-operations) opens the stored object of the
// next item while one is sent (src/lib/one-ahead.ts): one ahead at most, in order,
// nothing left open.

import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { oneAhead } from '../../src/lib/one-ahead.js';

function fakeObjects(n: number, failing: number[] = []) {
  const opened: number[] = [];
  const streams: Readable[] = [];
  let gate: Promise<void> = Promise.resolve();
  const open = async (i: number): Promise<Readable> => {
    await gate;
    opened.push(i);
    if (failing.includes(i)) throw new Error(`object ${i} missing`);
    const s = Readable.from([Buffer.from(`object ${i}`)], { objectMode: false });
    streams[i] = s;
    return s;
  };
  const live = () => streams.filter((s) => s && !s.destroyed).length;
  const hold = () => {
    let release!: () => void;
    gate = new Promise<void>((r) => (release = r));
    return release;
  };
  return { items: Array.from({ length: n }, (_, i) => i), open, opened, streams, live, hold };
}

const text = async (s: Readable) => {
  let out = '';
  for await (const c of s) out += String(c);
  return out;
};

const destroy = (s: Readable) => s.destroy();
const openAhead = (items: number[], wanted: (i: number) => boolean, open: (i: number) => Promise<Readable>, first?: Readable) =>
  oneAhead(items, { prepare: open, release: destroy, wanted, first });

describe('oneAhead', () => {
  it('gives each wanted item its own stream in order, opening at most one ahead', async () => {
    const o = fakeObjects(5);
    const ahead = openAhead(o.items, (i) => i !== 2, o.open);
    for (const i of [0, 1, 3, 4]) {
      expect(await text(await ahead.take(i))).toBe(`object ${i}`);
      await new Promise((r) => setImmediate(r));
      // The item taken and the next wanted one: never more.
      expect(o.opened.length).toBeLessThanOrEqual([0, 1, 3, 4].indexOf(i) + 2);
    }
    // Item 2 (transcoded, say) is never opened.
    expect(o.opened).toEqual([0, 1, 3, 4]);
    ahead.close();
    expect(o.live()).toBe(0);
  });

  it('uses the stream opened before answering for item 0', async () => {
    const o = fakeObjects(2);
    const first = Readable.from([Buffer.from('opened before')], { objectMode: false });
    const ahead = openAhead(o.items, () => true, o.open, first);
    expect(await text(await ahead.take(0))).toBe('opened before');
    expect(await text(await ahead.take(1))).toBe('object 1');
    expect(o.opened).toEqual([1]);
  });

  it('close() destroys the stream opened ahead, also one whose open finishes afterwards', async () => {
    const o = fakeObjects(3);
    const ahead = openAhead(o.items, () => true, o.open);
    await text(await ahead.take(0));
    await new Promise((r) => setImmediate(r));
    expect(o.opened).toEqual([0, 1]);
    ahead.close();
    await new Promise((r) => setImmediate(r));
    expect(o.streams[1].destroyed).toBe(true);

    const late = fakeObjects(3);
    const release = late.hold();
    const ahead2 = openAhead(late.items, () => true, late.open, Readable.from([Buffer.from('x')], { objectMode: false }));
    await ahead2.take(0);
    ahead2.close(); // item 1's open is still waiting
    release();
    await new Promise((r) => setTimeout(r, 10));
    expect(late.opened).toEqual([1]);
    expect(late.streams[1].destroyed).toBe(true);
  });

  it('an object that fails to open ahead fails only its own take, with its own error, and nothing is unhandled', async () => {
    const o = fakeObjects(3, [1]);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const ahead = openAhead(o.items, () => true, o.open);
      expect(await text(await ahead.take(0))).toBe('object 0');
      await new Promise((r) => setTimeout(r, 10));
      await expect(ahead.take(1)).rejects.toThrow('object 1 missing');
      ahead.close();
      await new Promise((r) => setTimeout(r, 10));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
