// openapi/dicomweb.paths.yaml, merged into openapi/openapi.yaml as it will be, is valid
// OpenAPI 3.1 and documents exactly the routes the DICOMweb plugin registers, each with
// its 401 and the error body for 4xx/5xx.

import fs from 'node:fs/promises';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import Fastify from 'fastify';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dicomwebRoutes } from '../src/http/routes/dicomweb.js';
import { tempDir } from './helpers/http.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{wildcard}');

describe('openapi/dicomweb.paths.yaml', () => {
  let merged: any;
  let file: string;
  let dir: string;
  const registered = new Set<string>();

  beforeAll(async () => {
    const base = parse(await fs.readFile('openapi/openapi.yaml', 'utf8'));
    const ours = parse(await fs.readFile('openapi/dicomweb.paths.yaml', 'utf8'));
    merged = { ...base, tags: [...(base.tags ?? []), { name: 'dicomweb' }], paths: { ...base.paths, ...ours.paths }, components: { ...base.components } };
    for (const [k, v] of Object.entries<any>(ours.components)) merged.components[k] = { ...(base.components[k] ?? {}), ...v };
    dir = await tempDir('tresor-openapi-dw-');
    file = path.join(dir, 'openapi.yaml');
    await fs.writeFile(file, stringify(merged));

    const app = Fastify();
    app.addHook('onRoute', (r) => {
      if (r.method !== 'HEAD') registered.add(`${r.method} ${toOpenApiPath(r.url)}`);
    });
    const inert = new Proxy({}, { get: () => () => Promise.reject(new Error('unused')) });
    await app.register(async (a) => dicomwebRoutes(a, { ingest: inert, query: inert, retrieve: inert, deletion: inert, audit: inert, config: { limits: { maxRequestBytes: 1, maxParts: 1, maxObjectBytes: 1 } } } as never), { prefix: '/dicomweb' });
    await app.ready();
    await app.close();
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('merges into a valid OpenAPI 3.1 document', async () => {
    await expect(SwaggerParser.validate(file)).resolves.toBeTruthy();
  });

  it('documents every DICOMweb route, and nothing else', () => {
    const documented = new Set<string>();
    for (const [p, item] of Object.entries<any>(parse(stringify(merged)).paths)) {
      if (!p.startsWith('/dicomweb')) continue;
      for (const m of METHODS) if (item[m]) documented.add(`${m.toUpperCase()} ${p}`);
    }
    expect([...registered].filter((k) => !documented.has(k)), 'served but not documented').toEqual([]);
    expect([...documented].filter((k) => !registered.has(k)), 'documented but not served').toEqual([]);
    expect(registered.size).toBeGreaterThanOrEqual(25);
  });

  it('every operation documents 401, and every error response is the one error body (or a STOW-RS response)', async () => {
    const deref: any = await SwaggerParser.dereference(file);
    for (const [p, item] of Object.entries<any>(deref.paths)) {
      if (!p.startsWith('/dicomweb')) continue;
      for (const m of METHODS) {
        const op = item[m];
        if (!op) continue;
        expect(op.responses['401'], `${m} ${p}`).toBeDefined();
        expect(op.security ?? deref.security).toEqual([{ bearerAuth: [] }]);
        for (const [status, resp] of Object.entries<any>(op.responses)) {
          if (Number(status) < 400) continue;
          if (m === 'post' && status === '409') continue; // PS3.18: the Store Instances Response
          expect(resp.content?.['application/json']?.schema?.required, `${m} ${p} ${status}`).toEqual(['error']);
        }
      }
    }
  });
});
