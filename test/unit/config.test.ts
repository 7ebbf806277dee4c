import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('config (one schema for environment and flags)', () => {
  it('has safe embedded defaults', () => {
    const c = loadConfig({}, {});
    expect(c.host).toBe('127.0.0.1');
    expect(c.dimsePort).toBe(2762);
    expect(c.httpPort).toBe(8443);
    expect(c.aeTitle).toBe('TRESOR');
    expect(c.databaseUrl).toBeUndefined();
    expect(c.s3).toBeUndefined();
    expect(c.corsOrigins).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.limits)).toBe(true);
  });

  it('reads the environment and lets flags win', () => {
    const c = loadConfig({ httpPort: '9443' }, { TRESOR_HTTP_PORT: '7443', TRESOR_DIMSE_PORT: '11112', TRESOR_AE_TITLE: 'PACS1' });
    expect(c.httpPort).toBe(9443);
    expect(c.dimsePort).toBe(11112);
    expect(c.aeTitle).toBe('PACS1');
  });

  it('names every bad value once, with the variable and the flag', () => {
    let err: unknown;
    try {
      loadConfig({}, { TRESOR_HTTP_PORT: 'eighty', TRESOR_AE_TITLE: 'BAD\\AE', DATABASE_URL: 'mysql://x', S3_ENDPOINT: 'minio', TRESOR_CORS_ORIGINS: 'not an origin', TRESOR_ADMIN_PASSWORD: 'short' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('TRESOR_HTTP_PORT (--http-port)');
    expect(problems).toContain('TRESOR_AE_TITLE');
    expect(problems).toContain('DATABASE_URL');
    expect(problems).toContain('S3_BUCKET (--s3-bucket) is required');
    expect(problems).toContain('TRESOR_CORS_ORIGINS');
    expect(problems).toContain('TRESOR_ADMIN_PASSWORD');
    // The password itself is never echoed back.
    expect((err as Error).message).not.toContain('short');
  });

  it('checks TRESOR_ADMIN_PASSWORD with the rules of every password, naming the variable (issue 10, item 5)', () => {
    const problem = (pw: string) => {
      try {
        loadConfig({}, { TRESOR_ADMIN_PASSWORD: pw });
        return '';
      } catch (e) {
        return (e as ConfigError).problems.join('\n');
      }
    };
    expect(problem('Admin-password-2024')).toBe('TRESOR_ADMIN_PASSWORD (--admin-password): must not contain the account name ("admin")');
    expect(problem('eleven-char')).toMatch(/^TRESOR_ADMIN_PASSWORD \(--admin-password\): must be at least 12 characters/);
    expect(problem('aaaaaaaaaaaaaaaa')).toMatch(/^TRESOR_ADMIN_PASSWORD .*repeated character/);
    expect(problem('Correct-Horse-Battery-9')).toBe('');
  });

  it('builds the S3 settings when given', () => {
    const c = loadConfig({}, { S3_ENDPOINT: '127.0.0.1', S3_PORT: '9000', S3_USE_SSL: 'false', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's', S3_BUCKET: 'tresor-objects' });
    expect(c.s3).toMatchObject({ endPoint: '127.0.0.1', port: 9000, useSSL: false, bucket: 'tresor-objects' });
  });
});
