// Flat config. The one rule that matters for the architecture: src/core never
// imports a transport, driver or SDK (ARCHITECTURE.md, rules 2 and 7).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const forbiddenInCore = ['fastify', '@fastify/*', 'dcmjs-dimse', 'knex', 'knex-pglite', 'pg', '@electric-sql/pglite', 'minio'];
// The layers around the core (ARCHITECTURE.md, layout): the core owns its ports
// (src/core/ports/) and these implement or call them; a core import of one of them
// would turn the dependency around. Matched on the import path, at any depth.
const layersOutsideCore = /(^|\/)(storage|pki|db|http|dimse|edge)\//;

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '.tmp/**'] },
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
  {
    // Plain Node scripts (benchmark driver): Node's globals.
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', Buffer: 'readonly' } },
  },
  {
    files: ['src/config.ts', 'test/**/*.ts', 'scripts/**', 'vitest.config.ts', 'eslint.config.js'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
