// Flat config. The one rule that matters for the architecture: src/core never
// imports a transport, driver or SDK (ARCHITECTURE.md, rules 2 and 7).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

// DICOMweb route modules (registered by routes.ts); what they share lives in modules of its own.
const dicomwebRouteModules = ['qido', 'wado', 'rendered', 'stow', 'wado-uri', 'delete'];

const forbiddenInCore = ['prom-client', 'fastify', '@fastify/*', 'dcmjs-dimse', 'knex', 'knex-pglite', 'pg', '@electric-sql/pglite', 'minio'];
// The layers around the core (ARCHITECTURE.md, layout): the core owns its ports
// (src/core/ports/) and these implement or call them; a core import of one of them
// would turn the dependency around. Matched on the import path, at any depth.
const layersOutsideCore = /(^|\/)(storage|pki|db|http|dimse|edge|metrics)\//;

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '.tmp/**', 'vendor/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only src/config.ts reads process.env (ARCHITECTURE.md rule 5).' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: forbiddenInCore, message: 'src/core must not import transports, drivers or SDKs (ARCHITECTURE.md rule 2).' },
          {
            regex: layersOutsideCore.source,
            message: 'src/core owns its ports (src/core/ports/): storage/, pki/, db/, http/, dimse/ and edge/ implement or call them, the core never imports them.',
          },
        ],
      }],
    },
  },
  // --- Module structure (issue 8): no import cycles in src/, and DICOMweb route modules
  // never import each other nor the registering routes.ts at run time. ---
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // Without these, .ts dependencies are not parsed and no cycle is ever seen.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    // Type-only imports vanish at run time; a cycle of them is not one.
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true, allowUnsafeDynamicCyclicDependency: false }] },
  },
  {
    files: dicomwebRouteModules.map((m) => `src/http/dicomweb/${m}.ts`),
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        patterns: [{
          group: [...dicomwebRouteModules, 'routes'].map((m) => `./${m}.js`),
          allowTypeImports: true,
          message: 'DICOMweb route modules do not import each other or routes.ts: move what they share into its own module (context.ts, retrieval.ts, request-accept.ts…).',
        }],
      }],
    },
  },
  {
    // Plain Node scripts (benchmark driver): Node's globals.
    files: ['scripts/**/*.mjs', 'docker/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', Buffer: 'readonly' } },
  },
  {
    files: ['src/config.ts', 'test/**/*.ts', 'scripts/**', 'docker/**', 'vitest.config.ts', 'eslint.config.js'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
