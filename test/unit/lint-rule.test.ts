// ARCHITECTURE.md rules 2 and 7, enforced by eslint: src/core never imports a
// transport, driver or SDK, and only src/config.ts reads process.env.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

describe('eslint architecture rules', () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  for (const mod of ['fastify', 'dcmjs-dimse', 'knex', 'minio', 'pg']) {
    it(`refuses ${mod} in src/core`, async () => {
      const [r] = await eslint.lintText(`import x from '${mod}';\nexport const y = x;\n`, { filePath: 'src/core/example.ts' });
      expect(r.messages.map((m) => m.ruleId)).toContain('no-restricted-imports');
    });
  }
  it('allows the same import in src/db', async () => {
    const [r] = await eslint.lintText(`import x from 'knex';\nexport const y = x;\n`, { filePath: 'src/db/example.ts' });
    expect(r.messages.map((m) => m.ruleId)).not.toContain('no-restricted-imports');
  });
  it('refuses process.env outside src/config.ts', async () => {
    const [r] = await eslint.lintText(`export const y = process.env.SECRET;\n`, { filePath: 'src/http/example.ts' });
    expect(r.messages.map((m) => m.ruleId)).toContain('no-restricted-properties');
  });
});
