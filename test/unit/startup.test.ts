// startup.ts: which failures are waited for, and the bounded retry (issue 10, item 4).

import { describe, expect, it } from 'vitest';
import { invalid, unavailable } from '../../src/core/errors.js';
import { databaseUnavailable } from '../../src/db/knex.js';
import { createLogger } from '../../src/log.js';
import { isTransient, StartupError, withStartupRetry } from '../../src/startup.js';

describe('start-up waits', () => {
  it('waits for a service that is not up, never for a configuration error', () => {
    expect(isTransient(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).toBe(true);
    expect(isTransient(new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' }), Object.assign(new Error('b'), { code: 'ECONNREFUSED' })]))).toBe(true);
    expect(isTransient(unavailable('s3-unavailable', 'cannot open the bucket'))).toBe(true);
    expect(isTransient(Object.assign(new Error('password authentication failed for user "x"'), { code: '28P01' }))).toBe(false);
    expect(isTransient(invalid('tls-key-permissions', 'chmod 600'))).toBe(false);
    expect(isTransient(new Error('boom'))).toBe(false);
    // What the running server's pg client throws for the same outage (db/knex.ts).
    expect(isTransient(databaseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })))).toBe(true);
  });

  it('retries with growing pauses and then gives up with one StartupError', async () => {
    const pauses: number[] = [];
    let calls = 0;
    const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    // The pauses are recorded, not slept: 0.5 s and 1 s fit in 1.6 s, the next 2 s does not.
    const p = withStartupRetry('the database', 1.6, createLogger('silent'), async () => {
      calls++;
      throw refused();
    }, async (ms) => {
      pauses.push(ms);
    });
    await expect(p).rejects.toBeInstanceOf(StartupError);
    await expect(p).rejects.toThrow(/^the database did not answer within 1.6 s \(connect ECONNREFUSED 127.0.0.1:1\): check that it runs/);
    expect(pauses).toEqual([500, 1000]);
    expect(calls).toBe(3);
    const ok = await withStartupRetry('the database', 5, createLogger('silent'), async () => (++calls > 3 + pauses.length ? 'up' : Promise.reject(refused())), async () => undefined);
    expect(ok).toBe('up');
    await expect(withStartupRetry('x', 5, createLogger('silent'), async () => Promise.reject(new Error('not transient')))).rejects.toThrow('not transient');
    // The give-up names the driver's error, not only the caller-safe sentence.
    const mapped = withStartupRetry('the database', 0.1, createLogger('silent'), async () => Promise.reject(databaseUnavailable(refused())), async () => undefined);
    await expect(mapped).rejects.toThrow(/\(connect ECONNREFUSED 127\.0\.0\.1:1\)/);
  });
});
