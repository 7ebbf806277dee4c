// A counting semaphore: at most `n` holders at a time, the others wait in order.
// Rendering and transcoding hold a frame or a whole object in memory, so their
// concurrency is what bounds it.

export function semaphore(n: number): <T>(work: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (work) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await work();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
