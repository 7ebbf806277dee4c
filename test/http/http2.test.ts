// Issue 9, item 4: HTTP/2 by ALPN on the HTTPS port, HTTP/1.1 kept. A real node:http2
// client (ALPN h2, trusting only the CA) stores, searches, retrieves and reads metadata
// on the port an HTTP/1.1 client uses, gets the same bytes, and gets no HTTP/1-only
// connection headers; 25 frame requests share one connection, as OHIF sends them.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import type { Pki } from '../../src/pki/ca.js';
import { databasesUnderTest } from '../helpers/db.js';
import { multipart, parseMultipartResponse, raw, startDicomwebServer, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { BIG_CT_ROWS, bigCt } from '../helpers/big-objects.js';
import { freshUid } from '../helpers/dicomweb-data.js';

const run = promisify(execFile);
// Two single-frame pydicom samples: a CT and a 64×64 16-bit MR.
const CT = fs.readFileSync(path.join(SAMPLE_DIR, 'CT_small.dcm'));
const MR = fs.readFileSync(path.join(SAMPLE_DIR, 'MR_small.dcm'));
const CONNECTION_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade'];

interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function h2request(session: http2.ClientHttp2Session, method: string, p: string, headers: Record<string, string>, body?: Buffer): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': p, ...headers });
    let res: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (res = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(res[':status']), headers: res, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    req.end(body);
  });
}

function alpn(url: string, ca: string, protocols: string[]): Promise<string | false> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: protocols }, () => {
      const p = sock.alpnProtocol ?? false;
      sock.end();
      resolve(p);
    });
    sock.on('error', reject);
  });
}

for (const dbu of databasesUnderTest()) {
  describe(`HTTP/2 and HTTP/1.1 on one port, on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let pki: Pki;
    let s: DicomwebServer;
    let token: string;
    let session: http2.ClientHttp2Session;

    beforeAll(async () => {
      t = await dbu.open();
      pki = await testPki();
      s = await startDicomwebServer({ db: t.db, pki });
      await s.department('radiology');
      token = await s.user('rad-admin', [{ department: 'radiology', role: 'admin' }]);
      session = http2.connect(s.url, { ca: s.ca });
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
    });
    afterAll(async () => {
      session?.close();
      await s?.close();
      await t?.close();
    });

    const auth = () => ({ authorization: `Bearer ${token}` });

    it('ALPN offers h2 and http/1.1; a client without ALPN gets HTTP/1.1', async () => {
      expect(await alpn(s.url, s.ca, ['h2', 'http/1.1'])).toBe('h2');
      expect(await alpn(s.url, s.ca, ['http/1.1'])).toBe('http/1.1');
      expect(session.alpnProtocol).toBe('h2');
      const h1 = await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token, headers: { accept: 'application/dicom+json' } });
      expect(h1.status).toBe(200);
    });

    it('STOW-RS, QIDO-RS, WADO-RS and /metadata over HTTP/2 give what HTTP/1.1 gives, byte for byte, without connection headers', async () => {
      const m = multipart([{ body: CT }, { body: MR }]);
      const stow = await h2request(session, 'POST', '/dicomweb/studies', { ...auth(), 'content-type': m.contentType, accept: 'application/dicom+json' }, m.body);
      expect(stow.status, stow.body.toString()).toBe(200);
      const refs = JSON.parse(stow.body.toString())['00081199'].Value as any[];
      expect(refs.length).toBe(2);

      const q2 = await h2request(session, 'GET', '/dicomweb/studies', { ...auth(), accept: 'application/dicom+json' });
      const q1 = await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token, headers: { accept: 'application/dicom+json' } });
      expect(q2.status).toBe(200);
      expect(JSON.parse(q2.body.toString())).toEqual(q1.json);
      expect(q1.json.length).toBe(2);

      for (const study of q1.json.map((x: any) => x['0020000D'].Value[0] as string)) {
        const accept = 'multipart/related; type="application/dicom"; transfer-syntax=*';
        const w2 = await h2request(session, 'GET', `/dicomweb/studies/${study}`, { ...auth(), accept });
        const w1 = await raw(s.url, s.ca, 'GET', `/dicomweb/studies/${study}`, { token, headers: { accept } });
        expect(w2.status).toBe(200);
        const parts = parseMultipartResponse(w2.headers['content-type'], w2.body);
        expect(parts.length).toBe(1);
        expect([CT, MR].some((b) => b.equals(parts[0].body))).toBe(true);
        expect(parseMultipartResponse(w1.headers['content-type'], w1.body)[0].body.equals(parts[0].body)).toBe(true);

        const md2 = await h2request(session, 'GET', `/dicomweb/studies/${study}/metadata`, { ...auth(), accept: 'application/dicom+json' });
        const md1 = await raw(s.url, s.ca, 'GET', `/dicomweb/studies/${study}/metadata`, { token, headers: { accept: 'application/dicom+json' } });
        expect(md2.status).toBe(200);
        expect(md2.body.equals(md1.body)).toBe(true);
        expect(md2.headers.etag).toBe(md1.headers.etag);
        for (const r of [w2, md2]) {
          for (const h of CONNECTION_HEADERS) expect(r.headers[h], h).toBeUndefined();
          expect(r.headers['strict-transport-security']).toMatch(/max-age=31536000/);
          expect(r.headers['x-content-type-options']).toBe('nosniff');
        }
      }
      for (const h of CONNECTION_HEADERS) expect(stow.headers[h], h).toBeUndefined();
      expect(q2.headers['strict-transport-security']).toMatch(/max-age=31536000/);
    });

    it('25 frame requests at once share one HTTP/2 connection and all succeed', async () => {
      const series = (await raw(s.url, s.ca, 'GET', '/dicomweb/instances?Modality=MR', { token, headers: { accept: 'application/dicom+json' } })).json[0];
      const st = series['0020000D'].Value[0];
      const se = series['0020000E'].Value[0];
      const sop = series['00080018'].Value[0];
      const accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
      const rs = await Promise.all(
        Array.from({ length: 25 }, () => h2request(session, 'GET', `/dicomweb/studies/${st}/series/${se}/instances/${sop}/frames/1`, { ...auth(), accept })),
      );
      const first = parseMultipartResponse(rs[0].headers['content-type'], rs[0].body)[0].body;
      expect(first.length).toBe(64 * 64 * 2);
      for (const r of rs) {
        expect(r.status).toBe(200);
        expect(parseMultipartResponse(r.headers['content-type'], r.body)[0].body.equals(first)).toBe(true);
      }
      expect(session.closed || session.destroyed).toBe(false);
    });

    it('WADO-RS of a study of multi-chunk objects, at once over HTTP/2 and HTTP/1.1: every part byte for byte (read chunks go back only once sent)', async () => {
      // The body gives each 1 MiB read chunk back from the write callback (src/http/chunk-returning-body.ts);
      // a chunk reused before its bytes were sent would put one object's bytes into another's.
      const study = freshUid();
      const series = freshUid();
      const objects = BIG_CT_ROWS.map((r) => bigCt(study, series, r));
      const m = multipart(objects.map((body) => ({ body })));
      const stow = await h2request(session, 'POST', '/dicomweb/studies', { ...auth(), 'content-type': m.contentType, accept: 'application/dicom+json' }, m.body);
      expect(stow.status, stow.body.toString()).toBe(200);
      const accept = 'multipart/related; type="application/dicom"; transfer-syntax=*';
      const url = `/dicomweb/studies/${study}`;
      const answers = await Promise.all([
        ...Array.from({ length: 3 }, () => h2request(session, 'GET', url, { ...auth(), accept })),
        ...Array.from({ length: 2 }, () => raw(s.url, s.ca, 'GET', url, { token, headers: { accept } })),
      ]);
      const want = objects.map((o) => o.toString('base64')).sort();
      for (const a of answers) {
        expect(a.status).toBe(200);
        const parts = parseMultipartResponse(a.headers['content-type'], a.body);
        expect(parts.map((p) => p.body.toString('base64')).sort()).toEqual(want);
      }
    });

    it('a client that goes away mid-study (HTTP/2 stream reset, HTTP/1.1 socket closed): the objects are closed and the server keeps serving', async () => {
      const rows = (await raw(s.url, s.ca, 'GET', '/dicomweb/studies?PatientName=Chunks*', { token, headers: { accept: 'application/dicom+json' } })).json;
      const url = `/dicomweb/studies/${rows[0]['0020000D'].Value[0]}`;
      const accept = 'multipart/related; type="application/dicom"; transfer-syntax=*';
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const before = fds();
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve) => {
          const req = session.request({ ':method': 'GET', ':path': url, ...auth(), accept });
          req.once('data', () => req.close(http2.constants.NGHTTP2_CANCEL));
          req.on('close', () => resolve());
          req.on('error', () => undefined);
          req.end();
        });
        await new Promise<void>((resolve) => {
          const u = new URL(s.url);
          const sock = tls.connect({ host: u.hostname, port: Number(u.port), ca: s.ca, ALPNProtocols: ['http/1.1'] }, () => {
            sock.write(`GET ${url} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${token}\r\nAccept: ${accept}\r\n\r\n`);
          });
          sock.once('data', () => sock.destroy());
          sock.on('close', () => resolve());
          sock.on('error', () => undefined);
        });
      }
      for (let t = 0; t < 50 && fds() > before; t++) await new Promise((r) => setTimeout(r, 100));
      expect(fds()).toBeLessThanOrEqual(before);
      const after = await h2request(session, 'GET', url, { ...auth(), accept });
      expect(after.status).toBe(200);
      expect(parseMultipartResponse(after.headers['content-type'], after.body).length).toBe(BIG_CT_ROWS.length);
      expect(session.destroyed).toBe(false);
    });

    it('an unread request body is refused on its stream only: the connection keeps serving', async () => {
      const m = multipart([{ body: Buffer.alloc(4 * 1024 * 1024, 1) }]);
      // No token: 401 before the body is read; the stream is reset, not the connection.
      const refused = await h2request(session, 'POST', '/dicomweb/studies', { 'content-type': m.contentType, accept: 'application/dicom+json' }, m.body);
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body.toString()).error).toBeDefined();
      const after = await h2request(session, 'GET', '/dicomweb/studies', { ...auth(), accept: 'application/dicom+json' });
      expect(after.status).toBe(200);
      expect(session.destroyed).toBe(false);
    });

    it('curl --http2 speaks h2 to the same port', async () => {
      const { stdout: version } = await run('curl', ['-V']);
      expect(version, 'Debian curl is built with nghttp2').toMatch(/HTTP2/);
      const caFile = path.join(s.dataDir, 'curl-ca.pem');
      fs.writeFileSync(caFile, s.ca);
      const { stdout } = await run('curl', [
        '-sS', '--http2', '--cacert', caFile, '-H', `Authorization: Bearer ${token}`, '-H', 'Accept: application/dicom+json',
        '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${s.url}/dicomweb/studies`,
      ]);
      expect(stdout).toBe('2 200');
      const { stdout: h1 } = await run('curl', [
        '-sS', '--http1.1', '--cacert', caFile, '-H', `Authorization: Bearer ${token}`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${s.url}/dicomweb/studies`,
      ]);
      expect(h1).toBe('1.1 200');
    });
  });
}
