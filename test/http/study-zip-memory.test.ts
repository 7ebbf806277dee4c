// The study ZIP of a large study (a 512 MiB multi-frame instance plus a small one) keeps
// the server's RSS bounded: the server runs in a child process (helpers/dicomweb-child.ts,
// as test/dicomweb/memory.test.ts) that samples its own RSS. The ZIP is written to a temp
// file as it arrives and checked with Info-ZIP `unzip` (CRC test, then the big entry's
// SHA-256 against the generated object).

import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigInstance, reissue, type BigInstance } from '../helpers/dicomweb-data.js';
import { multipart, raw, upload } from '../helpers/dicomweb.js';
import { tempDir } from '../helpers/http.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const BUDGET = 200 * MiB;

describe('study ZIP memory with a 512 MiB instance (server in a child process)', () => {
  let child: ChildProcess;
  let url: string;
  let ca: string;
  let token: string;
  let big: BigInstance;
  let out: string;

  const ask = <T>(type: string): Promise<T> =>
    new Promise((resolve) => {
      const on = (m: any) => {
        if (m.type === type) {
          child.off('message', on);
          resolve(m as T);
        }
      };
      child.on('message', on);
      child.send({ type });
    });

  beforeAll(async () => {
    child = fork(path.join(here, '../helpers/dicomweb-child.ts'), [], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const ready = await new Promise<any>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    ({ url, ca, token } = ready);
    big = bigInstance(512 * MiB);
    out = await tempDir('tresor-zipmem-');
  }, 120_000);
  afterAll(async () => {
    if (child?.connected) {
      child.send({ type: 'close' });
      await new Promise((r) => child.once('exit', r));
    }
    if (out) await fs.rm(out, { recursive: true, force: true });
  });

  it('streams the ZIP byte-identical while RSS growth stays under 200 MiB', async () => {
    const boundary = 'big-boundary-0123456789';
    const body = new PassThrough();
    body.write(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
    const src = big.stream();
    src.pipe(body, { end: false });
    src.on('end', () => body.end(`\r\n--${boundary}--\r\n`));
    const stow = await upload(url, ca, '/dicomweb/studies', { token, headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' }, body });
    expect(stow.status, stow.text).toBe(200);
    const small = reissue('CT_small.dcm', { study: big.study });
    const mp = multipart([{ body: small.bytes }]);
    expect((await raw(url, ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': mp.contentType, accept: 'application/dicom+json' }, body: mp.body })).status).toBe(200);

    await ask('reset');
    const file = path.join(out, 'study.zip');
    const u = new URL(url);
    const length = await new Promise<number>((resolve, reject) => {
      const req = https.request({ host: u.hostname, port: u.port, path: `/console/api/studies/${big.study}/zip`, headers: { authorization: `Bearer ${token}` }, ca, agent: false }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        pipeline(res, createWriteStream(file)).then(() => resolve(Number(res.headers['content-length'])), reject);
      });
      req.on('error', reject);
      req.end();
    });
    const p = await ask<{ baseline: number; peak: number }>('peak');
    console.log('study ZIP: server RSS growth (MiB):', ((p.peak - p.baseline) / MiB).toFixed(1));
    expect(p.peak - p.baseline).toBeLessThan(BUDGET);
    expect((await fs.stat(file)).size).toBe(length);
    expect(length).toBeGreaterThan(big.size);

    await promisify(execFile)('unzip', ['-tq', file]);
    const expected = createHash('sha256');
    for await (const c of big.stream()) expected.update(c as Buffer);
    const got = createHash('sha256');
    const unzip = spawn('unzip', ['-p', file, `${big.study}/${big.series}/${big.sop}.dcm`], { stdio: ['ignore', 'pipe', 'inherit'] });
    for await (const c of unzip.stdout) got.update(c as Buffer);
    expect(got.digest('hex')).toBe(expected.digest('hex'));
  }, 600_000);
});
