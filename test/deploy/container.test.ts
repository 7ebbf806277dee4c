// docker/Dockerfile, built and started for real (issue 11 item 4). No Docker engine runs on
// these machines and registry base images cannot be pulled, so the image is built with
// buildah (`bud --isolation chroot`, which needs no daemon) FROM a base that
// docker/local-base.sh assembles from this machine's node and npm; the Dockerfile is the one
// that ships, unchanged. Then the image is checked from outside (its config, its files) and
// run: `buildah run` starts `tresor serve` on the embedded defaults inside it, on the host's
// network (loopback only) and free ports, and the test talks to it over HTTPS.
//
// buildah missing is a FAILURE, not a skip: scripts/test-prereqs.sh and .ci/run install it.
// Storage is private to this test (TRESOR_BUILDAH_ROOT, default /var/tmp/tresor-buildah)
// and kept between runs: the base image is keyed by `node --version` and local-base.sh's
// content, and `--layers` reuses every build step whose inputs did not change.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = process.env.TRESOR_BUILDAH_ROOT ?? '/var/tmp/tresor-buildah';
const STORE = ['--root', path.join(ROOT, 'root'), '--runroot', path.join(ROOT, 'run')];
const IMAGE = 'localhost/tresor:test';
const PREFIX = 'tresor-test-';
const BUILD_LOG = path.join(ROOT, 'build.log');

function buildah(args: string[], opts: { user?: string; env?: Record<string, string> } = {}): string {
  return execFileSync('buildah', [...STORE, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, ...opts.env } });
}

/** `buildah run` in a working container, as the image's user unless told otherwise. */
function runIn(ctr: string, cmd: string[], opts: { user?: string; env?: Record<string, string> } = {}) {
  const extra = [...(opts.user ? ['--user', opts.user] : []), ...Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`])];
  return buildah(['run', '--isolation', 'chroot', '--network', 'host', ...extra, ctr, '--', ...cmd]);
}

/** Runs a long command, its output appended to BUILD_LOG; rejects with the log's tail. */
function logged(cmd: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const log = createWriteStream(BUILD_LOG, { flags: 'a' });
    log.write(`\n$ ${cmd} ${args.join(' ')}\n`);
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on('error', reject);
    child.on('close', (code) => {
      log.end(() => {
        if (code === 0) return resolve(Date.now() - started);
        const tail = readFileSync(BUILD_LOG, 'utf8').split('\n').slice(-40).join('\n');
        reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')}… exited ${code}; end of ${BUILD_LOG}:\n${tail}`));
      });
    });
  });
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

type Reply = { status: number; body: string };
function httpsRequest(port: number, ca: string, method: string, p: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        method,
        path: p,
        ca,
        timeout: 10_000,
        headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

/** Every regular file under dir, as paths relative to it (symlinks not followed). */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...walk(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

// Counted as a failed test when buildah is missing (the hooks below fail too, and vitest
// would report their tests only as skipped).
it('buildah is installed (scripts/test-prereqs.sh and .ci/run install it)', () => {
  expect(() => execFileSync('buildah', ['--version'], { stdio: 'ignore' })).not.toThrow();
});

describe('docker/Dockerfile built with buildah and run', () => {
  const containers: string[] = [];
  let inspect: { Docker: { config: Record<string, unknown>; history?: { created_by?: string }[] } };
  let rootfs: string; // the image's filesystem, mounted read-only through a working container
  let probe: string; // a working container for short `buildah run`s

  function newContainer(): string {
    const name = `${PREFIX}${process.pid}-${containers.length}`;
    buildah(['from', '--name', name, '--pull=never', IMAGE]);
    containers.push(name);
    return name;
  }

  beforeAll(async () => {
    try {
      execFileSync('buildah', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('buildah is not installed: the container test needs it (apt-get install -y buildah; scripts/test-prereqs.sh does it)');
    }
    mkdirSync(ROOT, { recursive: true });
    // Containers a crashed earlier run left behind.
    for (const name of buildah(['containers', '--format', '{{.ContainerName}}']).split('\n')) {
      if (name.startsWith(PREFIX)) buildah(['rm', name]);
    }
    // The layer cache grows with every source change (a new build layer each time): past
    // 4 GiB start again from nothing, one cold build (a few minutes) rather than a full disk.
    const used = Number(execFileSync('du', ['-sb', ROOT], { encoding: 'utf8' }).split('\t')[0]);
    if (used > 4 * 1024 ** 3) buildah(['rmi', '--all', '--force']);
    const scriptHash = createHash('sha256').update(readFileSync('docker/local-base.sh')).digest('hex').slice(0, 12);
    const base = `localhost/tresor-base:node-${process.version}-${scriptHash}`;
    const opts = { BUILDAH_OPTS: STORE.join(' ') };
    const baseMs = await logged('bash', ['docker/local-base.sh', base], opts);
    const buildMs = await logged('buildah', [
      ...STORE,
      'bud',
      '--isolation',
      'chroot',
      '--format',
      'docker', // the OCI format has no HEALTHCHECK
      '--layers',
      '--pull=never',
      '-f',
      'docker/Dockerfile',
      '--build-arg',
      `BASE=${base}`,
      // The OHIF viewer's fetch (a large npm tarball) is not what this test is about.
      '--build-arg',
      'TRESOR_SKIP_VIEWER=1',
      '-t',
      IMAGE,
      '.',
    ]);
    console.log(`container test: base image ${(baseMs / 1000).toFixed(1)} s, image build ${(buildMs / 1000).toFixed(1)} s (log: ${BUILD_LOG})`);
    inspect = JSON.parse(buildah(['inspect', '--type', 'image', IMAGE]));
    probe = newContainer();
    rootfs = buildah(['mount', probe]).trim();
  }, 40 * 60_000);

  afterAll(() => {
    for (const name of containers) {
      try {
        buildah(['rm', name]);
      } catch {
        // already gone
      }
    }
  });

  describe('the image as built', () => {
    it('runs as uid:gid 1000:1000, keeps /data as a VOLUME, has a HEALTHCHECK on healthcheck.mjs and starts `tresor serve`', () => {
      const c = inspect.Docker.config;
      expect(c.User).toBe('1000:1000');
      expect(Object.keys(c.Volumes as object)).toEqual(['/data']);
      expect(c.Healthcheck).toMatchObject({ Test: ['CMD', 'node', '/app/healthcheck.mjs'], Retries: 3 });
      expect(c.Entrypoint).toEqual(['node', 'dist/src/cli.js']);
      expect(c.Cmd).toEqual(['serve']);
      expect(Object.keys(c.ExposedPorts as object).sort()).toEqual(['2762/tcp', '8443/tcp']);
      expect(c.Env).toEqual(expect.arrayContaining(['NODE_ENV=production', 'TRESOR_DATA_DIR=/data']));
    });

    it('/data is owned by 1000:1000 with mode 0700, and empty', () => {
      const st = statSync(path.join(rootfs, 'data'));
      expect([st.uid, st.gid, (st.mode & 0o7777).toString(8)]).toEqual([1000, 1000, '700']);
      expect(readdirSync(path.join(rootfs, 'data'))).toEqual([]);
    });

    it('carries production dependencies only: no package the lockfile marks dev, no sources or build tools', () => {
      const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { dev?: boolean }> };
      const modules = path.join(rootfs, 'app');
      const devPresent = Object.entries(lock.packages)
        .filter(([p, meta]) => p.startsWith('node_modules/') && meta.dev)
        .map(([p]) => p)
        .filter((p) => existsSync(path.join(modules, p)));
      expect(devPresent).toEqual([]);
      for (const tool of ['vitest', 'typescript', 'vite', 'eslint', 'tsx', 'playwright-core']) {
        expect(existsSync(path.join(modules, 'node_modules', tool)), tool).toBe(false);
      }
      const prod = Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: object }).dependencies);
      for (const dep of prod) expect(existsSync(path.join(modules, 'node_modules', dep)), dep).toBe(true);
      expect(readdirSync(modules).sort()).toEqual(['dist', 'healthcheck.mjs', 'init-secrets.mjs', 'node_modules', 'package.json', 'vendor']);
      expect(existsSync(path.join(modules, 'dist/src/cli.js'))).toBe(true);
      expect(existsSync(path.join(modules, 'dist/web/index.html'))).toBe(true);
    });

    it('holds no secret: none in its environment or history, no key, password or token file in its layers', () => {
      const env = (inspect.Docker.config.Env as string[]).join('\n');
      expect(env).not.toMatch(/PASSWORD|SECRET|TOKEN|ACCESS_KEY|MASTER_KEY|DATABASE_URL/i);
      const history = (inspect.Docker.history ?? []).map((h) => h.created_by ?? '').join('\n');
      expect(history).not.toMatch(/PASSWORD=|SECRET=|TOKEN=|_authToken/i);
      const files = walk(rootfs);
      expect(files.length).toBeGreaterThan(1000);
      const suspicious = files.filter((f) =>
        /(^|\/)(initial-admin-password|master\.key|ca\.key|server\.key|id_rsa|id_ed25519|\.env|tresor\.env|\.git-credentials)$/.test(f),
      );
      expect(suspicious).toEqual([]);
      // npm settings in the image: the registry and CA file only (local-base.sh), never a token.
      for (const f of files.filter((f) => /(^|\/)\.?npmrc$/.test(f))) {
        expect(readFileSync(path.join(rootfs, f), 'utf8'), f).not.toMatch(/_auth|token|password/i);
      }
    });
  });

  describe('the image running', () => {
    let ctr: string;
    let serve: ChildProcess | undefined;
    let serveLog = '';
    let httpPort: number;
    let dimsePort: number;
    let ca: string;

    beforeAll(async () => {
      ctr = newContainer();
      httpPort = await freePort();
      dimsePort = await freePort();
      // The image's own defaults (data in /data, embedded PGlite, generated TLS) except the
      // address, loopback instead of 0.0.0.0: the container shares the host's network here.
      serve = spawn(
        'buildah',
        [...STORE, 'run', '--isolation', 'chroot', '--network', 'host', '-e', 'TRESOR_HOST=127.0.0.1', '-e', `TRESOR_HTTP_PORT=${httpPort}`,
          '-e', `TRESOR_DIMSE_PORT=${dimsePort}`, ctr, '--', 'node', 'dist/src/cli.js', 'serve'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      serve.stdout?.on('data', (c: Buffer) => (serveLog += c.toString()));
      serve.stderr?.on('data', (c: Buffer) => (serveLog += c.toString()));
      const deadline = Date.now() + 180_000;
      while (!/tresor is listening/.test(serveLog)) {
        if (serve.exitCode !== null) throw new Error(`tresor serve exited ${serve.exitCode}:\n${serveLog}`);
        if (Date.now() > deadline) throw new Error(`tresor serve did not start in 180 s:\n${serveLog}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      ca = runIn(ctr, ['node', '-e', "process.stdout.write(require('fs').readFileSync('/data/tls/ca.crt'))"]);
    }, 240_000);

    afterAll(async () => {
      if (serve && serve.exitCode === null) {
        const exited = new Promise((r) => serve?.once('close', r));
        serve.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
        if (serve.exitCode === null) serve.kill('SIGKILL');
      }
    }, 60_000);

    it('the server inside runs as uid 1000 and cannot rewrite its own code', () => {
      const out = runIn(ctr, [
        'node',
        '-e',
        "const fs=require('fs'); let w='written'; try { fs.writeFileSync('/app/dist/src/cli.js','x') } catch (e) { w=e.code }" +
          "; console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), write: w }))",
      ]);
      expect(JSON.parse(out)).toEqual({ uid: 1000, gid: 1000, write: 'EACCES' });
      expect(serveLog).toContain('"host":"127.0.0.1"');
    });

    it('GET /healthz answers 200 over HTTPS verified with the CA it generated in /data/tls', async () => {
      expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----/);
      const r = await httpsRequest(httpPort, ca, 'GET', '/healthz');
      expect(r.status).toBe(200);
    });

    it("the image's HEALTHCHECK script exits 0 against the server, 1 where nothing answers", async () => {
      expect(runIn(ctr, ['node', '/app/healthcheck.mjs'], { env: { TRESOR_HTTP_PORT: String(httpPort) } })).toBe('');
      const closed = await freePort();
      let code = 0;
      try {
        runIn(ctr, ['node', '/app/healthcheck.mjs'], { env: { TRESOR_HTTP_PORT: String(closed) } });
      } catch (e) {
        code = (e as { status: number }).status;
      }
      expect(code).not.toBe(0);
    });

    it('refuses plaintext: HTTP on the HTTPS port and a bare TCP A-ASSOCIATE on the DICOM port get no answer', async () => {
      const plain = await new Promise<string>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: httpPort, path: '/healthz', timeout: 10_000 }, (res) => resolve(`HTTP ${res.statusCode}`));
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      });
      expect(plain).toMatch(/^error /);
      // A-ASSOCIATE-RQ PDU type 0x01 (PS3.8 §9.3.2) in the clear: the TLS listener must not answer with DICOM.
      const reply = await new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        const s = net.connect(dimsePort, '127.0.0.1', () => s.write(Buffer.from([0x01, 0x00, 0, 0, 0, 0x44, 0x00, 0x01, ...Array(68).fill(0x20)])));
        s.setTimeout(10_000, () => s.destroy());
        s.on('data', (c) => chunks.push(c));
        s.on('error', () => undefined);
        s.on('close', () => resolve(Buffer.concat(chunks)));
      });
      // Nothing, or a TLS alert record (content type 0x15), never an A-ASSOCIATE-AC/RJ (0x02/0x03).
      expect(reply.length === 0 || reply[0] === 0x15).toBe(true);
    });

    it('generated the bootstrap admin password (0600, uid 1000, not a default, never logged) and it logs in', async () => {
      const info = JSON.parse(
        runIn(ctr, [
          'node',
          '-e',
          "const fs=require('fs'); const f='/data/initial-admin-password'; const s=fs.statSync(f);" +
            'console.log(JSON.stringify({ uid: s.uid, mode: (s.mode & 0o777).toString(8), password: fs.readFileSync(f, "utf8").trim() }))',
        ]),
      ) as { uid: number; mode: string; password: string };
      expect(info.uid).toBe(1000);
      expect(info.mode).toBe('600');
      expect(info.password.length).toBeGreaterThanOrEqual(16);
      expect(info.password).not.toMatch(/^(admin|password|changeme|tresor)$/i);
      expect(serveLog).not.toContain(info.password);
      const ok = await httpsRequest(httpPort, ca, 'POST', '/auth/token', { username: 'admin', password: info.password });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toMatchObject({ token_type: 'Bearer' });
      const bad = await httpsRequest(httpPort, ca, 'POST', '/auth/token', { username: 'admin', password: 'admin' });
      expect(bad.status).toBe(401);
    });
  });

  describe("compose's secrets service: init-secrets.mjs run in the image as compose runs it", () => {
    it('generates every credential once (0600, master.key and tresor.env for uid 1000), keeps them on the next start', () => {
      const ctr = newContainer();
      const first = runIn(ctr, ['node', '/app/init-secrets.mjs', '/tmp/secrets', '1000'], { user: '0:0' });
      expect(first).toMatch(/generated postgres_password, s3_access_key, s3_secret_key, master\.key/);
      const read =
        "const fs=require('fs'); const d='/tmp/secrets'; const o={};" +
        "for (const f of fs.readdirSync(d).sort()) { const s=fs.statSync(d+'/'+f); o[f]={ uid: s.uid, mode: (s.mode & 0o777).toString(8), value: fs.readFileSync(d+'/'+f).toString('base64') } }" +
        'console.log(JSON.stringify(o))';
      type Files = Record<string, { uid: number; mode: string; value: string }>;
      const files = JSON.parse(runIn(ctr, ['node', '-e', read], { user: '0:0' })) as Files;
      expect(Object.keys(files)).toEqual(['master.key', 'postgres_password', 's3_access_key', 's3_secret_key', 'tresor.env']);
      for (const [name, f] of Object.entries(files)) {
        expect(f.mode, name).toBe('600');
        expect(f.uid, name).toBe(name === 'master.key' || name === 'tresor.env' ? 1000 : 0);
      }
      const text = (name: string) => Buffer.from(files[name].value, 'base64').toString('utf8').trim();
      expect(text('postgres_password')).toMatch(/^[0-9a-f]{64}$/);
      expect(text('s3_access_key')).toMatch(/^tresor-[0-9a-f]{16}$/);
      expect(text('s3_secret_key')).toMatch(/^[0-9a-f]{64}$/);
      expect(text('tresor.env')).toContain(`postgres://tresor:${text('postgres_password')}@postgres:5432/tresor`);
      expect(Object.values(files).map((f) => Buffer.from(f.value, 'base64').toString('utf8')).join('\n')).not.toMatch(/minioadmin/i);

      const second = runIn(ctr, ['node', '/app/init-secrets.mjs', '/tmp/secrets', '1000'], { user: '0:0' });
      expect(second).toMatch(/already holds every secret; nothing changed/);
      const again = JSON.parse(runIn(ctr, ['node', '-e', read], { user: '0:0' })) as Files;
      expect(again).toEqual(files);
    });
  });
});

// Not a test: sizes for the report, printed once the suite is done.
afterAll(() => {
  try {
    const size = execFileSync('buildah', [...STORE, 'images', '--format', '{{.Name}}:{{.Tag}} {{.Size}}', IMAGE], { encoding: 'utf8' }).trim();
    console.log(`container test: image ${size}; buildah storage in ${ROOT}: ${execFileSync('du', ['-sh', ROOT], { encoding: 'utf8' }).split('\t')[0]}`);
  } catch {
    // nothing built
  }
});

