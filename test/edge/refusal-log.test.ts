// Refusal lines are rate-limited: a flood of refused associations costs a bounded
// number of log lines, and the number left out is reported once a minute.

import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { refusalLog } from '../../src/edge/refusal-log.js';
import { createLogger } from '../../src/log.js';

describe('refusalLog', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('logs 20 refusals a minute, then counts the rest', () => {
    const lines: string[] = [];
    const logger = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) as never);
    const r = refusalLog(logger);
    for (let i = 0; i < 50; i++) r.log(logger, { reason: 'source-address-not-allowed' });
    expect(lines.filter((l) => l.includes('edge association refused'))).toHaveLength(20);
    vi.advanceTimersByTime(60_000);
    expect(lines.filter((l) => l.includes('"suppressed":30'))).toHaveLength(1);
    r.log(logger, { reason: 'calling-ae-not-served' });
    expect(lines.filter((l) => l.includes('edge association refused'))).toHaveLength(21);
    r.stop();
  });
});
