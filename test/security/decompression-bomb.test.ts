// Issue 14, item 1, attacked through the real server (HTTPS and DIMSE from one Deps,
// as main.ts builds them): a writer stores, with STOW-RS, RLE objects that decode into
// far more than they are — one whose header promises a small image but whose segment
// claims runs far beyond it, one whose header promises gigabytes (thousands of tiny
// frames). A reader then asks for them with every conversion: WADO-RS in the default
// syntax, rendered, WADO-URI (application/dicom and image/jpeg) and C-GET through
// getscu proposing only Explicit VR Little Endian. Each answer is a clean error, quickly;
// meanwhile /healthz and a second reader's normal retrievals keep answering, and the
// server's memory stays bounded (decoding runs in child processes: pixel-codec.ts).

import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { httpsOptions } from '../../src/http/tls.js';
import { AE, auditOf, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { run, startTlsTunnel, type Background } from '../helpers/dimse-tools.js';
import jpeg from 'jpeg-js';
import { multipart, parseMultipartResponse, raw } from '../helpers/dicomweb.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const MiB = 1024 * 1024;
const RLE = '1.2.840.10008.1.2.5';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const PASSWORD = 'correct horse battery staple 14';

// ---- A small Part 10 writer (explicit VR little endian elements, PS3.5 §7.1.2) ----
const LONG = new Set(['OB', 'OW', 'SQ', 'UN', 'UT', 'UL_']);
function el(group: number, element: number, vr: string, value: Buffer): Buffer {
  const h = Buffer.alloc(LONG.has(vr) ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (LONG.has(vr)) h.writeUInt32LE(value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const uid = (s: string) => str(s, '\0');
const us = (n: number) => Buffer.from([n & 0xff, n >> 8]);
const item = (b: Buffer) => {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0xfffe, 0);
  h.writeUInt16LE(0xe000, 2);
  h.writeUInt32LE(b.length, 4);
  return Buffer.concat([h, b]);
};

interface Bomb {
  study: string;
  series: string;
  sop: string;
  bytes: Buffer;
}

/**
 * An RLE (or `o.ts`) Secondary Capture image of `frames` frames of rows × columns 8-bit,
 * each frame fragment `fragment`; in its own study and series unless `o.into` names them.
 */
function rleObject(n: number, rows: number, columns: number, frames: number, fragment: Buffer, o: { ts?: string; into?: { study: string; series: string }; number?: number } = {}): Bomb {
  const root = `2.25.1414${n}${Date.now() % 1e9}`;
  const study = o.into?.study ?? `${root}.1`;
  const series = o.into?.series ?? `${root}.2`;
  const sop = `${root}.3`;
  const metaBody = Buffer.concat([
    el(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    el(0x0002, 0x0002, 'UI', uid(SC)),
    el(0x0002, 0x0003, 'UI', uid(sop)),
    el(0x0002, 0x0010, 'UI', uid(o.ts ?? RLE)),
    el(0x0002, 0x0012, 'UI', uid('1.2.826.0.1.3680043.9.7433.1')),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(metaBody.length);
  const meta = Buffer.concat([el(0x0002, 0x0000, 'UL', groupLength), metaBody]);
  const pixelItems = Buffer.concat([item(Buffer.alloc(0)), ...Array.from({ length: frames }, () => item(fragment))]);
  const seqEnd = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const pixelHeader = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const dataset = Buffer.concat([
    el(0x0008, 0x0016, 'UI', uid(SC)),
    el(0x0008, 0x0018, 'UI', uid(sop)),
    el(0x0008, 0x0020, 'DA', str('20260101')),
    el(0x0008, 0x0060, 'CS', str('OT')),
    el(0x0010, 0x0010, 'PN', str('Bomb^Test')),
    el(0x0010, 0x0020, 'LO', str(`BOMB${n}`)),
    el(0x0020, 0x000d, 'UI', uid(study)),
    el(0x0020, 0x000e, 'UI', uid(series)),
    el(0x0020, 0x0013, 'IS', str(String(o.number ?? 1))),
    el(0x0028, 0x0002, 'US', us(1)),
    el(0x0028, 0x0004, 'CS', str('MONOCHROME2')),
    el(0x0028, 0x0008, 'IS', str(String(frames))),
    el(0x0028, 0x0010, 'US', us(rows)),
    el(0x0028, 0x0011, 'US', us(columns)),
    el(0x0028, 0x0100, 'US', us(8)),
    el(0x0028, 0x0101, 'US', us(8)),
    el(0x0028, 0x0102, 'US', us(7)),
    el(0x0028, 0x0103, 'US', us(0)),
    pixelHeader,
    pixelItems,
    seqEnd,
  ]);
  const bytes = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), meta, dataset]);
  return { study, series, sop, bytes };
}

/** An RLE frame (PS3.5 §G): one segment at offset 64, then `runs` repeat runs of 128 bytes each. */
function rleFrame(runs: number): Buffer {
  const header = Buffer.alloc(64);
  header.writeUInt32LE(1, 0);
  header.writeUInt32LE(64, 4);
  const body = Buffer.alloc(runs * 2);
  for (let i = 0; i < runs; i++) body[i * 2] = 0x81; // -127: repeat the next byte 128 times
  return Buffer.concat([header, body]);
}

describe('decompression bombs stored by a writer, fetched with every conversion (issue 14 item 1)', () => {
  let env: DimseEnv;
  let app: FastifyInstance;
  let url: string;
  let ca: string;
  let writer: string;
  let reader: string;
  let reader2: string;
  let ws: DeviceCreds;
  let tunnel: Background;
  // Small header (64 × 64 × 8 bits = 4 KiB), a segment claiming 32 MiB of runs.
  const runs = rleObject(1, 64, 64, 1, rleFrame(256 * 1024));
  // A header that promises 3000 frames of 1024 × 1024 (3 GiB) in 3000 tiny fragments.
  const promises = rleObject(2, 1024, 1024, 3000, rleFrame(4));
  let good: { study: string; series: string; sop: string; bytes: Buffer };
  // Series that need transcoding instance by instance (WADO-RS of a series, default syntax):
  // "over": a good image, then the promises bomb — refused up front from the catalogue;
  // "broken": good, a JPEG whose codestream (1024²) is far larger than its header's 64² —
  // found only when the child decodes it, after the first part was sent — then good again.
  const over1 = rleObject(3, 64, 64, 1, rleFrame(32));
  const over2 = rleObject(4, 1024, 1024, 3000, rleFrame(4), { into: over1, number: 2 });
  const broken1 = rleObject(5, 64, 64, 1, rleFrame(32));
  const bigJpeg = jpeg.encode({ width: 1024, height: 1024, data: Buffer.alloc(1024 * 1024 * 4, 128) }, 90).data;
  const broken2 = rleObject(6, 64, 64, 1, bigJpeg.length % 2 ? Buffer.concat([bigJpeg, Buffer.alloc(1)]) : bigJpeg, { ts: JPEG_BASELINE, into: broken1, number: 2 });
  const broken3 = rleObject(7, 64, 64, 1, rleFrame(32), { into: broken1, number: 3 });

  const login = async (username: string) => {
    const r = await raw(url, ca, 'POST', '/auth/token', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) });
    expect(r.status, r.text).toBe(200);
    return r.json.access_token as string;
  };

  beforeAll(async () => {
    // A short time limit and cap, so the test is quick; the defaults are 30 s and 256 MiB.
    env = await startDimseEnv({ decode: { workers: 2, timeoutMs: 10_000, maxOutputBytes: 64 * MiB } });
    app = await buildApp(env.deps, { https: httpsOptions(env.pki) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `https://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    ca = await fs.readFile(env.caPath, 'utf8');
    await env.user('writer1', PASSWORD, [['radiology', 'writer']]);
    await env.user('reader1', PASSWORD, [['radiology', 'reader']]);
    await env.user('reader2', PASSWORD, [['radiology', 'reader']]);
    [writer, reader, reader2] = [await login('writer1'), await login('reader1'), await login('reader2')];
    ws = await env.device('WS01', [['radiology', 'reader']]);
    tunnel = await startTlsTunnel(env.port, ws, env.caPath);

    const mr = await fs.readFile(path.join(SAMPLE_DIR, 'MR_small_RLE.dcm'));
    const body = multipart([runs, promises, over1, over2, broken1, broken2, broken3].map((b) => ({ body: b.bytes })).concat([{ body: mr }]));
    const stow = await raw(url, ca, 'POST', '/dicomweb/studies', { token: writer, headers: { 'content-type': body.contentType, accept: 'application/dicom+json' }, body: body.body });
    // Accepted: ingest keeps the received bytes (ARCHITECTURE.md rule 6) and decodes nothing.
    expect(stow.status, stow.text).toBe(200);
    const ref = stow.json['00081199'].Value as Record<string, any>[];
    expect(ref).toHaveLength(8);
    const d = (await run('dcmdump', ['-q', '+P', '0020,000d', '+P', '0020,000e', '+P', '0008,0018', path.join(SAMPLE_DIR, 'MR_small_RLE.dcm')])).stdout;
    const v = (tag: string) => new RegExp(`\\(${tag}\\) UI \\[([^\\]]*)\\]`).exec(d)![1];
    good = { study: v('0020,000d'), series: v('0020,000e'), sop: v('0008,0018'), bytes: mr };
  }, 180_000);
  afterAll(async () => {
    await tunnel?.stop();
    await app?.close();
    await env?.close();
  });

  it('every conversion answers a clean error quickly while /healthz and another reader are served; memory stays bounded', async () => {
    const base = (b: { study: string; series: string; sop: string }) => `/dicomweb/studies/${b.study}/series/${b.series}/instances/${b.sop}`;
    const uri = (b: { study: string; series: string; sop: string }, rest: string) => `/dicomweb/wado?requestType=WADO&studyUID=${b.study}&seriesUID=${b.series}&objectUID=${b.sop}&${rest}`;

    // The server's own memory (decoders run in other processes), sampled throughout.
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 25);

    // /healthz every 100 ms, and a second reader's normal retrievals, all through the attack.
    let attacking = true;
    const health: number[] = [];
    const healthFailures: string[] = [];
    const healthLoop = (async () => {
      while (attacking) {
        const t0 = Date.now();
        const r = await raw(url, ca, 'GET', '/healthz').catch((e: Error) => ({ status: 0, text: e.message }));
        health.push(Date.now() - t0);
        if (r.status !== 200) healthFailures.push(`${r.status} ${r.text}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const otherReader: string[] = [];
    const readerLoop = (async () => {
      while (attacking) {
        const r = await raw(url, ca, 'GET', base(good), { token: reader2, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
        otherReader.push(r.status === 200 && r.body.includes(good.bytes.subarray(132, 4000)) ? 'ok' : `${r.status}`);
        const img = await raw(url, ca, 'GET', `${base(good)}/rendered`, { token: reader2, headers: { accept: 'image/jpeg' } });
        otherReader.push(img.status === 200 && img.body[0] === 0xff && img.body[1] === 0xd8 ? 'ok' : `rendered ${img.status} ${img.text}`);
      }
    })();

    const timed = async <T>(f: () => Promise<T>): Promise<{ r: T; ms: number }> => {
      const t0 = Date.now();
      const r = await f();
      return { r, ms: Date.now() - t0 };
    };
    const results: Record<string, { status: number; code?: string; ms: number; bytes: number }> = {};
    const ask = async (name: string, p: string, accept?: string) => {
      const { r, ms } = await timed(() => raw(url, ca, 'GET', p, { token: reader, headers: accept ? { accept } : {} }));
      results[name] = { status: r.status, code: r.json?.error?.code, ms, bytes: r.body.length };
    };
    const dicom = 'multipart/related; type="application/dicom"';
    await Promise.all([
      ask('wado-rs runs', base(runs), dicom),
      ask('wado-rs promises', base(promises), dicom),
      ask('rendered runs', `${base(runs)}/rendered`, 'image/jpeg'),
      ask('rendered promises', `${base(promises)}/frames/1/rendered`, 'image/jpeg'),
      ask('thumbnail runs', `${base(runs)}/thumbnail`, 'image/jpeg'),
    ]);
    await Promise.all([
      ask('wado-uri dicom runs', uri(runs, 'contentType=application%2Fdicom')),
      ask('wado-uri dicom promises', uri(promises, 'contentType=application%2Fdicom')),
      ask('wado-uri jpeg runs', uri(runs, 'contentType=image%2Fjpeg')),
    ]);

    // C-GET: getscu proposes only uncompressed syntaxes for the storage sub-operation (as in
    // test/dimse/qr.test.ts: the RLE object must be transcoded).
    const out = path.join(env.dir, 'get-bomb');
    await fs.mkdir(out);
    const get = async (b: Bomb) =>
      timed(() =>
        run('getscu', ['-v', '-S', '+B', '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${b.study}`, '-k', `SeriesInstanceUID=${b.series}`, '-k', `SOPInstanceUID=${b.sop}`, '-od', out, '127.0.0.1', String(tunnel.port)], { timeoutMs: 60_000 }),
      );
    const [getRuns, getPromises] = await Promise.all([get(runs), get(promises)]);

    attacking = false;
    await Promise.all([healthLoop, readerLoop]);
    clearInterval(sampler);
    console.log('bomb answers:', JSON.stringify(results), 'C-GET ms:', getRuns.ms, getPromises.ms, 'healthz max ms:', Math.max(...health), 'RSS growth MiB:', ((rssPeak - rssBefore) / MiB).toFixed(1));

    // WADO-RS and WADO-URI application/dicom: 406 with the reason, not a 200 of gigabytes.
    // The runs bomb: dcmjs-codecs' RLE decoder stops at the 4 KiB its header promises, so
    // the transcode either succeeds within that (object + 4 KiB) or is a clean 406.
    for (const name of ['wado-rs runs', 'wado-uri dicom runs']) {
      const r = results[name];
      if (r.status === 200) expect(r.bytes, name).toBeLessThan(runs.bytes.length + 64 * 64 + 4096);
      else expect(r, name).toMatchObject({ status: 406, code: expect.stringMatching(/^decode-/) });
    }
    expect(results['wado-rs promises']).toMatchObject({ status: 406, code: 'decode-too-large' });
    expect(results['wado-uri dicom promises']).toMatchObject({ status: 406, code: 'decode-too-large' });
    // Rendered: 503 with the reason (dcmjs-imaging's RLE decoder returns more than the
    // header promises: refused by the per-frame budget; the stored object can still be fetched as is).
    for (const name of ['rendered runs', 'thumbnail runs', 'wado-uri jpeg runs', 'rendered promises']) {
      expect(results[name], name).toMatchObject({ status: 503, code: expect.stringMatching(/^(decode-|render-failed)/) });
    }
    for (const [name, r] of Object.entries(results)) expect(r.ms, name).toBeLessThan(20_000);

    // C-GET: the sub-operation fails (A702: none succeeded, PS3.4 C.4.3.1.4), nothing is received.
    // The promises bomb fails its sub-operation (A702: none succeeded, PS3.4 C.4.3.1.4); the
    // runs bomb decodes within its 4 KiB promise or fails.
    const pl = getPromises.r.stdout + getPromises.r.stderr;
    expect(pl).toMatch(/Number of Failed Suboperations\s*:\s*1/);
    expect(pl).toMatch(/Number of Completed Suboperations\s*:\s*0/);
    expect(getRuns.r.stdout + getRuns.r.stderr).toMatch(/Number of (Failed|Completed) Suboperations\s*:\s*1/);
    for (const g of [getRuns, getPromises]) expect(g.ms).toBeLessThan(30_000);
    for (const f of await fs.readdir(out)) expect((await fs.stat(path.join(out, f))).size).toBeLessThan(runs.bytes.length + 64 * 64 + 4096);

    // Everyone else was served throughout.
    expect(healthFailures).toEqual([]);
    expect(health.length).toBeGreaterThan(3);
    expect(Math.max(...health)).toBeLessThan(2_000);
    expect(otherReader.length).toBeGreaterThan(0);
    expect(otherReader.filter((x) => x !== 'ok')).toEqual([]);
    // The server process decoded nothing itself: no gigabytes here.
    expect(rssPeak - rssBefore).toBeLessThan(300 * MiB);
  }, 180_000);

  it('the objects are still served as stored, byte for byte (transfer-syntax=*), and the decoders keep working', async () => {
    const r = await raw(url, ca, 'GET', `/dicomweb/studies/${runs.study}/series/${runs.series}/instances/${runs.sop}`, {
      token: reader,
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    expect(r.status).toBe(200);
    expect(r.body.includes(runs.bytes.subarray(runs.bytes.length - 4096))).toBe(true);
    const t = await raw(url, ca, 'GET', `/dicomweb/studies/${good.study}/series/${good.series}/instances/${good.sop}`, { token: reader, headers: { accept: 'multipart/related; type="application/dicom"' } });
    expect(t.status).toBe(200);
    expect(String(t.headers['content-type'])).toContain('multipart/related');
    expect(env.deps.pixels.pids().length).toBeGreaterThan(0);
  });

  it('a series retrieved with transcoding: a promise past the cap refuses the whole request before a byte is sent (406); a decode failure found mid-stream leaves that instance out of a well-formed multipart, and the audit row names it', async () => {
    const dicom = 'multipart/related; type="application/dicom"';
    const series = (b: Bomb) => `/dicomweb/studies/${b.study}/series/${b.series}`;

    // (a) The catalogue's promise of the 2nd instance (3 GiB) is past the cap: 406 up front, no multipart at all.
    const a = await raw(url, ca, 'GET', series(over1), { token: reader, headers: { accept: dicom } });
    expect(a.status, a.text).toBe(406);
    expect(a.json.error.code).toBe('decode-too-large');
    expect(a.json.error.message).toContain(over2.sop);
    expect(String(a.headers['content-type'])).not.toContain('multipart');
    // The same series as stored is served whole.
    const asStored = await raw(url, ca, 'GET', series(over1), { token: reader, headers: { accept: `${dicom}; transfer-syntax=*` } });
    expect(asStored.status).toBe(200);
    expect(parseMultipartResponse(asStored.headers['content-type'], asStored.body)).toHaveLength(2);

    // (b) The 2nd instance fails in the codec child after the 1st was sent: the response is
    // a complete multipart (closing delimiter) with the 1st and 3rd instances, transcoded.
    const b = await raw(url, ca, 'GET', series(broken1), { token: reader, headers: { accept: dicom } });
    expect(b.status, b.text).toBe(200);
    const boundary = /boundary=([^";]+)/.exec(String(b.headers['content-type']))![1];
    expect(b.body.subarray(b.body.length - boundary.length - 6).toString('latin1')).toBe(`--${boundary}--\r\n`);
    const parts = parseMultipartResponse(b.headers['content-type'], b.body);
    expect(parts).toHaveLength(2);
    for (const [part, sent] of [[parts[0], broken1], [parts[1], broken3]] as const) {
      expect(part.headers['content-type']).toBe('application/dicom; transfer-syntax=1.2.840.10008.1.2.1');
      expect(part.body.toString('latin1', 128, 132)).toBe('DICM');
      expect(part.body.includes(Buffer.from(sent.sop, 'latin1'))).toBe(true);
      expect(part.body.includes(Buffer.from('1.2.840.10008.1.2.1\0', 'latin1'))).toBe(true);
    }
    expect(b.body.includes(Buffer.from(broken2.sop, 'latin1'))).toBe(false);

    // Audit: (a) refused naming the instance; (b) a failure row saying which instance was left out and why.
    // (The row of a streamed answer is written once the body has gone out: it may trail the client by a moment.)
    let rows: Awaited<ReturnType<typeof auditOf>> = [];
    for (let t0 = Date.now(); Date.now() - t0 < 10_000; await new Promise((res) => setTimeout(res, 100))) {
      rows = (await auditOf(env, 'retrieve')).filter((r) => r.details.resource === 'instances');
      if (rows.some((r) => r.details.seriesUid === broken1.series) && rows.some((r) => r.details.seriesUid === over1.series && r.outcome === 'failure')) break;
    }
    const refused = rows.find((r) => r.details.seriesUid === over1.series && r.details.reason === 'decode-too-large');
    expect(refused?.outcome).toBe('failure');
    expect(refused?.details.refusedInstance).toBe(over2.sop);
    const partial = rows.find((r) => r.details.seriesUid === broken1.series && r.details.reason === 'instances-not-transcoded');
    expect(partial?.outcome).toBe('failure');
    expect(partial?.details).toMatchObject({ instances: 3, transcoded: 3, sent: 2, omittedCount: 1, omitted: [{ sopInstanceUid: broken2.sop, reason: 'decode-too-large' }] });
  }, 120_000);
});
