// Keeps anonymous failures from flooding the audit trail: an attacker sending
// garbage tokens as fast as it can would otherwise write one hash-chained row per
// request (and serialise on the chain's lock). Per source address and minute, the
// first LIMIT refusals are audited one by one; the rest are counted, and the count
// is carried by the next audited refusal from that address. It bounds the trail's
// growth, it is not itself an access control. createRefusalThrottle counts in this
// process's memory; createSharedRefusalThrottle counts in the database as well, so
// several nodes on one database share one budget per address (issue 11 item 2).

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

/** One address's window, as the shared store keeps it. */
export interface ThrottleWindow {
  start: Date;
  count: number;
  suppressed: number;
}

/** Where several nodes keep the windows (db/audit-throttle.repo.ts): one atomic read-modify-write. */
export interface ThrottleWindowStore {
  update(source: string, fn: (w: ThrottleWindow | null) => ThrottleWindow): Promise<void>;
}

export interface SharedRefusalThrottle {
  admit(source: string | undefined): Promise<{ suppressed: number } | null>;
  /**
   * This node's held-back refusals (the local budget's), for the periodic summary rows.
   * Those held back by the shared budget stay in the database and ride on the next
   * admitted refusal from that address, so nothing is counted twice.
   */
  drain(): { source: string; suppressed: number }[];
}

/**
 * The per-address budget shared through the database. The local throttle runs first: an
 * address over the limit on this node is over it everywhere (global count ≥ local count),
 * so a flood costs the database at most `limit` updates per address, minute and node.
 */
export function createSharedRefusalThrottle(
  store: ThrottleWindowStore,
  now: () => Date,
  opts: { limit?: number; windowMs?: number; maxSources?: number } = {},
): SharedRefusalThrottle {
  const local = createRefusalThrottle(now, opts);
  const limit = opts.limit ?? 20;
  const windowMs = opts.windowMs ?? 60_000;
  return {
    async admit(source) {
      const mine = local.admit(source);
      if (!mine) return null;
      let result: { suppressed: number } | null = null;
      await store.update(source ?? 'unknown', (w) => {
        const t = now();
        const win = !w || t.getTime() - w.start.getTime() >= windowMs ? { start: t, count: 0, suppressed: w?.suppressed ?? 0 } : { ...w };
        win.count++;
        if (win.count > limit) {
          win.suppressed++;
          result = null;
          return win;
        }
        result = { suppressed: win.suppressed + mine.suppressed };
        win.suppressed = 0;
        return win;
      });
      return result;
    },
    drain: () => local.drain(),
  };
}
