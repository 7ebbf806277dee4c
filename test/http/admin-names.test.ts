// The admin API's JSON schemas and the core check names with one set of patterns
// (core/identity/names.ts): whatever the schema lets through, the core accepts, and the
// other way round, so a name is never refused by one and taken by the other. The schemas
// are run by Fastify's own Ajv, as in the server.
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryAeTitle, tryUsername, normalizeDepartmentName } from '../../src/core/identity/names.js';
import { aeTitle, departmentName, username } from '../../src/http/routes/admin.js';

const USERNAMES = [
  'alice', 'Alice', 'ALICE', 'a', '0', 'a.b_c-d@e', 'x'.repeat(64), 'x'.repeat(65), '', '.alice', '-alice', '_alice', '@alice',
  'al ice', 'alice!', 'ålice', 'alİce', '\u212Aelvin', 'alice\u0000', 'ali\nce', 'a/b', 'a\\b', 'ａlice',
];
const DEPARTMENTS = ['Radiology', 'CT 2', 'a', 'x'.repeat(64), 'x'.repeat(65), '', 'le ad', 'Cardio/Echo', 'Röntgen', 'a\tb', '-x', 'x-', '12'];
const AE_TITLES = ['TRESOR', 'CT_1', 'A B', 'x'.repeat(16), 'x'.repeat(17), '', 'A\\B', 'A\u0001', 'Ä', '~!@#$%^&*()'];

const accepted = (core: () => unknown): boolean => {
  try {
    return core() !== null;
  } catch {
    return false;
  }
};

describe('admin schema patterns agree with the core', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify();
    app.post('/check', {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { username, departmentName, aeTitle },
        },
      },
    }, async () => ({ ok: true }));
    await app.ready();
  });
  afterAll(() => app.close());

  const schemaAccepts = async (field: string, value: string): Promise<boolean> =>
    (await app.inject({ method: 'POST', url: '/check', payload: { [field]: value } })).statusCode === 200;

  // Names without surrounding white space: the core trims it (a login typed with a trailing
  // space still works), the schema refuses it; the cases below pin that difference.
  it.each(USERNAMES)('username %j', async (value) => {
    expect(await schemaAccepts('username', value)).toBe(accepted(() => tryUsername(value)));
  });
  it.each(DEPARTMENTS)('department %j', async (value) => {
    expect(await schemaAccepts('departmentName', value)).toBe(accepted(() => normalizeDepartmentName(value)));
  });
  it.each(AE_TITLES)('AE title %j', async (value) => {
    expect(await schemaAccepts('aeTitle', value)).toBe(accepted(() => tryAeTitle(value)));
  });

  it('trims surrounding spaces in the core only', async () => {
    expect(await schemaAccepts('username', ' alice ')).toBe(false);
    expect(tryUsername(' alice\n')).toBe('alice');
    expect(await schemaAccepts('departmentName', ' Radiology')).toBe(false);
    expect(normalizeDepartmentName(' Radiology ')).toBe('Radiology');
    // PS3.5 §6.2: spaces around an AE value are not significant.
    expect(await schemaAccepts('aeTitle', ' CT1 ')).toBe(true);
    expect(tryAeTitle(' CT1 ')).toBe('CT1');
  });

  it('folds case in the core only after the pattern matched', () => {
    expect(tryUsername('Alice')).toBe('alice');
    // U+212A KELVIN SIGN lower-cases to ASCII `k`: refused, not folded into another account.
    expect(tryUsername('\u212Aelvin')).toBeNull();
  });
});
