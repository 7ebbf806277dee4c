// Issue 5, memory: storing and retrieving a 1 GB multi-frame instance keeps the
// server's RSS bounded. The server runs in a child process (helpers/dicomweb-child.ts)
// that samples its own RSS every 25 ms, so what is measured is the server alone; the
// 1 GB object is generated as a stream on the client side, never held or written here.

import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigInstance, frameByte, type BigInstance } from '../helpers/dicomweb-data.js';
import { parseMultipartResponse, raw, upload } from '../helpers/dicomweb.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const BUDGET = 300 * MiB;

interface Peak {
  baseline: number;
  peak: number;
  now: number;
}

describe('DICOMweb memory with a 1 GB multi-frame instance (server in a child process)', () => {
  let child: ChildProcess;
  let url: string;
  let ca: string;
  let token: string;
  let big: BigInstance;
  const figures: Record<string, string> = {};

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
    big = bigInstance(1024 * MiB);
  }, 120_000);
  afterAll(async () => {
    if (child?.connected) {
      child.send({ type: 'close' });
      await new Promise((r) => child.once('exit', r));
    }
    console.log('server RSS growth (MiB):', figures);
  });

  it('stores it with STOW-RS, streamed: RSS growth stays under 300 MB', async () => {
    // Warm up code paths (TLS, parser, ingest) so the baseline is not a cold process.
    const small = bigInstance(4 * MiB);
    const warm = await send(small);
    expect(warm.status, warm.text).toBe(200);
    await ask('reset');
    const r = await send(big);
    const p = await ask<Peak>('peak');
    expect(r.status, r.text).toBe(200);
    expect(JSON.parse(r.text)['00081199'].Value[0]['00081155'].Value[0]).toBe(big.sop);
    figures.stow = ((p.peak - p.baseline) / MiB).toFixed(1);
    expect(p.peak - p.baseline).toBeLessThan(BUDGET);
  }, 600_000);

  it('retrieves it with WADO-RS, streamed and byte-identical: RSS growth stays under 300 MB', async () => {
    await ask('reset');
    const { size, sha } = await download(`/dicomweb/studies/${big.study}/series/${big.series}/instances/${big.sop}`, 'multipart/related; type="application/dicom"; transfer-syntax=*');
    const p = await ask<Peak>('peak');
    figures.wado = ((p.peak - p.baseline) / MiB).toFixed(1);
    expect(p.peak - p.baseline).toBeLessThan(BUDGET);
    expect(size).toBe(big.size);
    expect(sha).toBe(await expectedSha());
  }, 600_000);

  it('serves its metadata from the database, its first and last frames, and renders one, within the same budget', async () => {
    await ask('reset');
    const md = await raw(url, ca, 'GET', `/dicomweb/studies/${big.study}/series/${big.series}/instances/${big.sop}/metadata`, { token, headers: { accept: 'application/dicom+json' } });
    expect(md.status).toBe(200);
    expect(md.json[0]['00280008'].Value[0]).toBe(big.frames);
    const base = `/dicomweb/studies/${big.study}/series/${big.series}/instances/${big.sop}`;
    for (const f of [1, big.frames, 2]) {
      const r = await raw(url, ca, 'GET', `${base}/frames/${f}`, { token, headers: { accept: 'multipart/related; type="application/octet-stream"' } });
      expect(r.status).toBe(200);
      const [part] = parseMultipartResponse(r.headers['content-type'], r.body);
      expect(part.body.length).toBe(big.frameBytes);
      for (const i of [0, 1, 4095, big.frameBytes - 1]) expect(part.body[i], `frame ${f} byte ${i}`).toBe(frameByte(f, i));
    }
    const img = await raw(url, ca, 'GET', `${base}/frames/${big.frames}/rendered?viewport=256,256`, { token, headers: { accept: 'image/jpeg' } });
    expect(img.status).toBe(200);
    const p = await ask<Peak>('peak');
    figures.framesAndRendered = ((p.peak - p.baseline) / MiB).toFixed(1);
    expect(p.peak - p.baseline).toBeLessThan(BUDGET);
  }, 600_000);

  function send(inst: BigInstance) {
    const boundary = 'big-boundary-0123456789';
    const body = new PassThrough();
    body.write(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
    const src = inst.stream();
    src.pipe(body, { end: false });
    src.on('end', () => body.end(`\r\n--${boundary}--\r\n`));
    return upload(url, ca, '/dicomweb/studies', { token, headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' }, body });
  }

  async function expectedSha(): Promise<string> {
    const h = createHash('sha256');
    for await (const c of big.stream()) h.update(c as Buffer);
    return h.digest('hex');
  }

  /** GETs a one-part multipart response, hashing the part on the fly (never buffering it). */
  function download(urlPath: string, accept: string): Promise<{ size: number; sha: string }> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const req = https.request({ host: u.hostname, port: u.port, path: urlPath, headers: { authorization: `Bearer ${token}`, accept }, ca, agent: false }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        const boundary = /boundary=([^;]+)/.exec(String(res.headers['content-type']))![1];
        const h = createHash('sha256');
        let head = Buffer.alloc(0);
        let bodyStart = -1;
        let seen = 0;
        const total = Number(res.headers['content-length']);
        const tail = Buffer.byteLength(`\r\n--${boundary}--\r\n`);
        let partLength = 0;
        res.on('data', (c: Buffer) => {
          if (bodyStart < 0) {
            head = Buffer.concat([head, c]);
            const i = head.indexOf('\r\n\r\n');
            if (i < 0) return;
            bodyStart = i + 4;
            partLength = total - bodyStart - tail;
            c = head.subarray(bodyStart);
            seen = 0;
          }
          const take = Math.max(0, Math.min(c.length, partLength - seen));
          h.update(c.subarray(0, take));
          seen += take;
        });
        res.on('end', () => resolve({ size: seen, sha: h.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }
});
