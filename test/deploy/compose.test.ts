// docker/compose.yaml against the Compose Specification's JSON schema, plus the rules the
// file promises (issue 11 item 4): no default or literal credential anywhere (MinIO's
// minioadmin included), secrets generated on the first start by init-secrets.mjs, only
// Tresor's ports published, healthchecks, named volumes for every piece of data, restart
// policies, pinned image tags. No Docker engine runs here: the file is never `up`-ed by a
// test (docker/README.md says so).
//
// The schema: test/deploy/compose-spec.schema.json is the Compose Specification's
// compose-spec.json (draft-07, Apache-2.0, github.com/compose-spec/compose-spec), taken
// verbatim from the npm package dclint@3.1.0 (MIT), file schemas/compose.schema.json,
// sha256 46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496. Vendored because
// the test machines reach no network but the npm registry, and a test should not fetch.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const COMPOSE = path.resolve('docker/compose.yaml');
const SCHEMA = path.resolve('test/deploy/compose-spec.schema.json');
const SECRETS_DIR = '/run/tresor-secrets';

type Service = {
  image?: string;
  build?: unknown;
  user?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  expose?: unknown;
  networks?: string[];
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  restart?: string;
};
type Compose = {
  services: Record<string, Service>;
  networks: Record<string, { internal?: boolean }>;
  volumes: Record<string, unknown>;
};

const text = readFileSync(COMPOSE, 'utf8');
const doc = parse(text) as Compose;
const schema = JSON.parse(readFileSync(SCHEMA, 'utf8')) as object;

function validator() {
  // strict: false — the schema uses the draft-07 annotation keywords the Compose project
  // adds (e.g. "deprecated"), which Ajv's strict mode would reject as unknown.
  // The schema names draft-07 as "https://json-schema.org/draft-07/schema"; Ajv knows that
  // meta-schema under its canonical id, http://json-schema.org/draft-07/schema#.
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile({ ...schema, $schema: 'http://json-schema.org/draft-07/schema#' });
}

/** The default of a `${VAR:-default}` interpolation, or the value itself. */
const interpolationDefault = (v: string) => /^\$\{[A-Z_]+:-([^}]+)\}$/.exec(v)?.[1] ?? v;

/** The files init-secrets.mjs writes, read from its source so the two cannot drift apart. */
function generatedSecretFiles(): Set<string> {
  const src = readFileSync(path.resolve('docker/init-secrets.mjs'), 'utf8');
  const names = [...src.matchAll(/secret\('([a-z0-9_.-]+)'/g)].map((m) => m[1]);
  names.push(...[...src.matchAll(/join\(dir, '([a-z0-9_.-]+)'\)/g)].map((m) => m[1]));
  return new Set(names);
}

describe('docker/compose.yaml: the Compose Specification schema', () => {
  it('the vendored schema is the one recorded (dclint@3.1.0 schemas/compose.schema.json)', () => {
    const sha = createHash('sha256').update(readFileSync(SCHEMA)).digest('hex');
    expect(sha).toBe('46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496');
  });

  it('validates', () => {
    const validate = validator();
    const ok = validate(doc);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the validator bites: a misspelt key, a dependency as a bare string and volumes as a string are each refused', () => {
    const validate = validator();
    const clone = () => structuredClone(doc) as unknown as { services: Record<string, Record<string, unknown>> };
    const misspelt = clone();
    misspelt.services.tresor.helthcheck = misspelt.services.tresor.healthcheck;
    expect(validate(misspelt)).toBe(false);
    const wrongType = clone();
    wrongType.services.tresor.depends_on = 'postgres';
    expect(validate(wrongType)).toBe(false);
    const volumesString = clone();
    volumesString.services.postgres.volumes = 'postgres-data:/var/lib/postgresql/data';
    expect(validate(volumesString)).toBe(false);
  });
});

describe('docker/compose.yaml: no default or literal credential', () => {
  it("names no minioadmin and no well-known default password anywhere", () => {
    expect(text).not.toMatch(/minioadmin|changeme|postgres:postgres|password123|secret123/i);
  });

  it('no service carries a credential in its environment: only *_FILE paths into the generated secrets', () => {
    const credential = /PASSWORD|SECRET|_KEY|TOKEN|ROOT_USER|ACCESS/i;
    const found: string[] = [];
    for (const [name, svc] of Object.entries(doc.services)) {
      for (const [key, value] of Object.entries(svc.environment ?? {})) {
        if (!credential.test(key)) continue;
        if (/_FILE$/.test(key) && String(value).startsWith(`${SECRETS_DIR}/`)) continue;
        found.push(`${name}.${key}=${value}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('PostgreSQL never falls back to trust or to a password in the environment', () => {
    const env = doc.services.postgres.environment ?? {};
    expect(env.POSTGRES_HOST_AUTH_METHOD).toBeUndefined();
    expect(env.POSTGRES_PASSWORD).toBeUndefined();
    expect(env.POSTGRES_PASSWORD_FILE).toBe(`${SECRETS_DIR}/postgres_password`);
  });

  it("MinIO's root credentials come from the generated files (its default would be minioadmin)", () => {
    const minio = doc.services.minio;
    expect(minio.environment?.MINIO_ROOT_USER).toBeUndefined();
    expect(minio.environment?.MINIO_ROOT_PASSWORD).toBeUndefined();
    const script = (minio.entrypoint ?? []).join(' ');
    expect(script).toContain(`MINIO_ROOT_USER="$$(cat ${SECRETS_DIR}/s3_access_key)"`);
    expect(script).toContain(`MINIO_ROOT_PASSWORD="$$(cat ${SECRETS_DIR}/s3_secret_key)"`);
  });

  it('every secret file the services read is one init-secrets.mjs generates, and they wait for it', () => {
    const generated = generatedSecretFiles();
    expect([...generated].sort()).toEqual(['master.key', 'postgres_password', 's3_access_key', 's3_secret_key', 'tresor.env']);
    const referenced = new Set([...text.matchAll(new RegExp(`${SECRETS_DIR}/([a-z0-9_.-]+)`, 'g'))].map((m) => m[1]));
    expect(referenced.size).toBeGreaterThan(0);
    for (const file of referenced) expect(generated, `${file} is read but never generated`).toContain(file);

    const init = doc.services.secrets;
    expect(init.entrypoint).toEqual(['node', '/app/init-secrets.mjs', '/secrets', '1000']);
    expect(init.volumes).toEqual(['secrets:/secrets']);
    expect(init.network_mode).toBe('none');
    for (const name of ['postgres', 'minio', 'tresor']) {
      const svc = doc.services[name];
      expect(svc.depends_on?.secrets?.condition, name).toBe('service_completed_successfully');
      expect(svc.volumes, name).toContain(`secrets:${SECRETS_DIR}:ro`);
    }
    expect(doc.services.tresor.environment?.TRESOR_MASTER_KEY_FILE).toBe(`${SECRETS_DIR}/master.key`);
    expect((doc.services.tresor.entrypoint ?? []).join(' ')).toContain(`. ${SECRETS_DIR}/tresor.env`);
  });
});

describe('docker/compose.yaml: exposure, health, data, restarts, images', () => {
  it("publishes only Tresor's ports (HTTPS 8443 and DICOM TLS 2762); PostgreSQL and MinIO only on the internal network", () => {
    const published = Object.entries(doc.services)
      .filter(([, s]) => s.ports !== undefined)
      .map(([n]) => n);
    expect(published).toEqual(['tresor']);
    expect(doc.services.tresor.ports?.map((p) => p.split(':').pop())).toEqual(['8443', '2762']);
    for (const name of ['postgres', 'minio']) {
      const svc = doc.services[name];
      expect(svc.network_mode, name).toBeUndefined();
      expect(svc.networks, name).toEqual(['backend']);
    }
    expect(doc.networks.backend.internal).toBe(true);
    expect(doc.services.tresor.networks).toEqual(['frontend', 'backend']);
  });

  it('every long-running service has a healthcheck; Tresor waits for healthy PostgreSQL and MinIO', () => {
    for (const name of ['postgres', 'minio', 'tresor']) {
      expect(doc.services[name].healthcheck?.test?.[0], name).toBe('CMD');
    }
    expect(doc.services.tresor.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(doc.services.tresor.depends_on?.minio?.condition).toBe('service_healthy');
  });

  it("Tresor's healthcheck is the script the image ships (the Dockerfile copies it, .dockerignore lets it through)", () => {
    const test = doc.services.tresor.healthcheck?.test ?? [];
    expect(test).toEqual(['CMD', 'node', '/app/healthcheck.mjs']);
    const dockerfile = readFileSync(path.resolve('docker/Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^COPY docker\/healthcheck\.mjs .*\.\/$/m);
    expect(dockerfile).toContain('CMD ["node", "/app/healthcheck.mjs"]');
    const ignore = readFileSync(path.resolve('.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('!docker/healthcheck.mjs');
    expect(ignore).toContain('!docker/init-secrets.mjs');
  });

  it('every piece of data is on a named, declared volume', () => {
    const mounts: Record<string, string> = {
      postgres: 'postgres-data:/var/lib/postgresql/data',
      minio: 'minio-data:/data',
      tresor: 'tresor-data:/data',
    };
    for (const [name, mount] of Object.entries(mounts)) expect(doc.services[name].volumes, name).toContain(mount);
    for (const svc of Object.values(doc.services)) {
      for (const v of svc.volumes ?? []) {
        const source = v.split(':')[0];
        // A named volume, not a bind mount of a host path.
        expect(source).toMatch(/^[a-z][a-z0-9-]*$/);
        expect(Object.keys(doc.volumes)).toContain(source);
      }
    }
  });

  it('long-running services restart unless stopped; the one-shot secrets service never', () => {
    for (const name of ['postgres', 'minio', 'tresor']) expect(doc.services[name].restart, name).toBe('unless-stopped');
    expect(doc.services.secrets.restart).toBe('no');
  });

  it('image tags are pinned: MinIO to a release, PostgreSQL to a major version, never latest', () => {
    const minio = interpolationDefault(doc.services.minio.image ?? '');
    expect(minio).toMatch(/^minio\/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
    const postgres = interpolationDefault(doc.services.postgres.image ?? '');
    expect(postgres).toMatch(/^postgres:\d+(\.\d+)?(-[a-z]+)?$/);
    for (const svc of Object.values(doc.services)) expect(svc.image ?? '').not.toMatch(/:latest\b|^[^:]+$/);
  });
});
