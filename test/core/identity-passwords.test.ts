// core/passwords.ts: the stored format, salts, verification, rules.

import { describe, expect, it } from 'vitest';
import {
  checkPasswordRules,
  DEFAULT_SCRYPT,
  generatePassword,
  hashPassword,
  isPasswordHash,
  needsRehash,
  verifyPassword,
} from '../../src/core/identity/passwords.js';
import { isTresorError } from '../../src/core/errors.js';

describe('password hashing', () => {
  it('writes a versioned scrypt hash with the default memory-hard parameters', async () => {
    const h = await hashPassword('a long enough password');
    expect(h).toMatch(/^\$scrypt\$v=1\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(isPasswordHash(h)).toBe(true);
    expect(DEFAULT_SCRYPT).toEqual({ ln: 15, r: 8, p: 1 });
    expect(h).not.toContain('a long enough password');
  });

  it('salts every hash: the same password hashes differently', async () => {
    const [a, b] = await Promise.all([hashPassword('same password here'), hashPassword('same password here')]);
    expect(a).not.toBe(b);
    expect(a.split('$')[4]).not.toBe(b.split('$')[4]);
  });

  it('verifies the right password only', async () => {
    const h = await hashPassword('correct horse battery staple');
    expect(await verifyPassword('correct horse battery staple', h)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', h)).toBe(false);
    expect(await verifyPassword('Correct horse battery staple', h)).toBe(false);
    expect(await verifyPassword('', h)).toBe(false);
  });

  it('treats Unicode compositions alike (NFC)', async () => {
    const h = await hashPassword('café crème brûlée!!');
    expect(await verifyPassword('cafe\u0301 cre\u0300me bru\u0302le\u0301e!!', h)).toBe(true);
  });

  it('refuses unreadable or tampered hashes instead of throwing', async () => {
    const h = await hashPassword('correct horse battery staple');
    expect(await verifyPassword('x', 'plaintext')).toBe(false);
    expect(await verifyPassword('correct horse battery staple', h.replace('v=1', 'v=2'))).toBe(false);
    // Parameters that would make one check allocate gigabytes are refused, not run.
    expect(await verifyPassword('correct horse battery staple', h.replace('ln=15', 'ln=30'))).toBe(false);
    expect(await verifyPassword('correct horse battery staple', h.replace('r=8', 'r=1'))).toBe(false);
  });

  it('asks for a rehash when the parameters are weaker than today’s', async () => {
    const weak = await hashPassword('correct horse battery staple', { ln: 10, r: 8, p: 1 });
    expect(needsRehash(weak)).toBe(true);
    expect(await verifyPassword('correct horse battery staple', weak)).toBe(true);
    expect(needsRehash(await hashPassword('correct horse battery staple'))).toBe(false);
    expect(needsRehash('garbage')).toBe(true);
  });

  it('refuses over-long input without hashing it', async () => {
    const h = await hashPassword('correct horse battery staple');
    expect(await verifyPassword('x'.repeat(10_000), h)).toBe(false);
  });
});

describe('password rules', () => {
  const reason = (pw: string, name?: string) => {
    try {
      checkPasswordRules(pw, { accountName: name });
      return 'ok';
    } catch (e) {
      return isTresorError(e) ? `${e.kind}:${e.reason}` : 'other';
    }
  };

  it('wants at least 12 characters and at most 256', () => {
    expect(reason('short pass!')).toBe('invalid:weak-password');
    expect(reason('twelve chars')).toBe('ok');
    expect(reason('x'.repeat(250) + 'abcdefg')).toBe('invalid:weak-password');
  });

  it('refuses one repeated character and the account name inside', () => {
    expect(reason('aaaaaaaaaaaaaaaa')).toBe('invalid:weak-password');
    expect(reason('my name is Alice, ok?', 'alice')).toBe('invalid:weak-password');
    expect(reason('something else entirely', 'alice')).toBe('ok');
  });

  it('never quotes the password in its message', () => {
    try {
      checkPasswordRules('hunter2-short');
      checkPasswordRules('Hunter2 hunter2', { accountName: 'hunter2' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2-short');
      expect((e as Error).message).not.toContain('Hunter2 hunter2');
    }
  });

  it('generates bootstrap passwords that pass the rules and do not repeat', () => {
    const a = generatePassword();
    const b = generatePassword();
    expect(a).toHaveLength(24);
    expect(a).not.toBe(b);
    expect(reason(a, 'admin')).toBe('ok');
  });
});
