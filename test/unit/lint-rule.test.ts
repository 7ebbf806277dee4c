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

// The core owns its ports: the layers around it depend on the core, never the reverse.
describe('eslint: src/core imports no layer around it', () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  const cases: Array<[string, string]> = [
    ['src/core/ingest.ts', '../storage/fs-store.js'],
    ['src/core/ingest.ts', '../storage/create-blob-store.js'],
    ['src/core/identity/admin.ts', '../../pki/device-cert.js'],
    ['src/core/identity/admin.ts', '../../pki/ca.js'],
    ['src/core/query.ts', '../db/query.repo.js'],
    ['src/core/query.ts', '../http/errors.js'],
    ['src/core/retrieve.ts', '../dimse/status.js'],
    ['src/core/dicom/parse.ts', '../../edge/gateway.js'],
  ];
  for (const [filePath, from] of cases) {
    it(`refuses ${from} in ${filePath}`, async () => {
      const [r] = await eslint.lintText(`import { x } from '${from}';\nexport const y = x;\n`, { filePath });
      expect(r.messages.map((m) => m.ruleId)).toContain('no-restricted-imports');
    });
  }
  for (const from of ['./ports/blob-store.js', './errors.js', '../lib/fs-atomic.js', './dicom/tags.js']) {
    it(`allows ${from} in src/core`, async () => {
      const [r] = await eslint.lintText(`import { x } from '${from}';\nexport const y = x;\n`, { filePath: 'src/core/example.ts' });
      expect(r.messages.map((m) => m.ruleId)).not.toContain('no-restricted-imports');
    });
  }
  it('allows storage/ to import the core port it implements', async () => {
    const [r] = await eslint.lintText(`import type { BlobStore } from '../core/ports/blob-store.js';\nexport type S = BlobStore;\n`, { filePath: 'src/storage/example.ts' });
    expect(r.messages.map((m) => m.ruleId)).not.toContain('no-restricted-imports');
  });
});

// Module structure: no import cycles in src/, and the DICOMweb route modules
// do not import each other (what they share has modules of its own).
describe('eslint module-structure rules', () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  it('refuses an import cycle in src/ (import-x/no-cycle)', async () => {
    // core/audit.ts imports core/errors.ts: errors.ts importing audit.ts back closes a cycle.
    const [r] = await eslint.lintText(`import { auditedRun } from './audit.js';\nexport const y = auditedRun;\n`, { filePath: 'src/core/errors.ts' });
    expect(r.messages.map((m) => m.ruleId)).toContain('import-x/no-cycle');
  });
  it('refuses a runtime import between DICOMweb route modules, and of routes.ts', async () => {
    const [a] = await eslint.lintText(`import { registerWadoRoutes } from './wado.js';\nexport const y = registerWadoRoutes;\n`, { filePath: 'src/http/dicomweb/rendered.ts' });
    expect(a.messages.map((m) => m.ruleId)).toContain('@typescript-eslint/no-restricted-imports');
    const [b] = await eslint.lintText(`import { dicomwebRoutes } from './routes.js';\nexport const y = dicomwebRoutes;\n`, { filePath: 'src/http/dicomweb/qido.ts' });
    expect(b.messages.map((m) => m.ruleId)).toContain('@typescript-eslint/no-restricted-imports');
  });
  it('allows the shared modules', async () => {
    const [r] = await eslint.lintText(`import { acceptOf } from './request-accept.js';\nimport type { DicomwebContext } from './context.js';\nexport const y = acceptOf;\nexport type C = DicomwebContext;\n`, { filePath: 'src/http/dicomweb/rendered.ts' });
    expect(r.messages.map((m) => m.ruleId)).not.toContain('@typescript-eslint/no-restricted-imports');
  });
});
