// Keeps anonymous failures from flooding the audit trail: an attacker sending
// garbage tokens as fast as it can would otherwise write one hash-chained row per
// request (and serialise on the chain's lock). Per source address and minute, the
// first LIMIT refusals are audited one by one; the rest are counted, and the count
// is carried by the next audited refusal from that address. Per process and in
// memory: it bounds the trail's growth, it is not itself an access control.

export interface RefusalThrottle {
  /** null: do not audit this one; otherwise audit it, with `suppressed` earlier ones untold. */
  admit(source: string | undefined): { suppressed: number } | null;
  /**
   * The refusals held back so far, per source, and forgets them: a periodic flush writes
   * them as summary rows, so a flood that stops still leaves its count in the trail.
   */
  drain(): { source: string; suppressed: number }[];
}

export function createRefusalThrottle(now: () => Date, opts: { limit?: number; windowMs?: number; maxSources?: number } = {}): RefusalThrottle {
  const limit = opts.limit ?? 20;
  const windowMs = opts.windowMs ?? 60_000;
  const maxSources = opts.maxSources ?? 10_000;
  const windows = new Map<string, { start: number; count: number; suppressed: number }>();
  return {
    admit(source) {
      const key = source ?? 'unknown';
      const t = now().getTime();
      let w = windows.get(key);
      if (!w || t - w.start >= windowMs) {
        const carried = w?.suppressed ?? 0;
        if (!w && windows.size >= maxSources) windows.clear(); // bounded memory under address spraying
        w = { start: t, count: 0, suppressed: carried };
        windows.set(key, w);
      }
      w.count++;
      if (w.count > limit) {
        w.suppressed++;
        return null;
      }
      const suppressed = w.suppressed;
      w.suppressed = 0;
      return { suppressed };
    },
    drain() {
      const out: { source: string; suppressed: number }[] = [];
      for (const [source, w] of windows) {
        if (w.suppressed > 0) out.push({ source, suppressed: w.suppressed });
        w.suppressed = 0;
      }
      return out;
    },
  };
}
