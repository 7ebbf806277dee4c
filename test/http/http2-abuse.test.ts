// Issue 9, item 4, the attack side: abusive HTTP/2 clients (node:http2 as the attacker)
// do not stop other clients. While attackers (1) open far more streams than the server
// allows and never read a byte of the answers (initial window 0), (2) flood PINGs and
// (3) flood SETTINGS, an HTTP/1.1 client and a well-behaved h2 client keep getting their
// answers; the server advertises and enforces its per-connection stream limit (100,
// http/tls.ts) and survives. Limits: README "HTTP/2".

import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import { databasesUnderTest } from '../helpers/db.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { multipart, raw, startDicomwebServer, type DicomwebServer } from '../helpers/dicomweb.js';
import { testPki } from '../helpers/http.js';

const STREAM_LIMIT = 100;

interface Outcome {
  answered: number;
  refused: number;
  sessionGone: boolean;
}

function connect(url: string, ca: string, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { ca, ...options });
    session.on('error', () => undefined); // attackers' sessions may be torn down: that is the point
    session.once('remoteSettings', () => resolve(session));
    session.once('close', () => reject(new Error('session closed before SETTINGS')));
  });
}

function h2get(session: http2.ClientHttp2Session, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, authorization: `Bearer ${token}`, accept: 'application/dicom+json' });
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', () => undefined);
    req.on('end', () => resolve(status));
    req.on('error', reject);
    req.end();
  });
}

for (const dbu of databasesUnderTest()) {
  describe(`abusive HTTP/2 clients, on ${dbu.name}`, () => {
    let t: { db: Db; close(): Promise<void> };
    let s: DicomwebServer;
    let token: string;
    let instancePath: string;

    beforeAll(async () => {
      t = await dbu.open();
      s = await startDicomwebServer({ db: t.db, pki: await testPki() });
      await s.department('radiology');
      token = await s.user('h2-user', [
        { department: 'radiology', role: 'reader' },
        { department: 'radiology', role: 'writer' },
      ]);
      const obj = reissue('CT_small.dcm');
      const m = multipart([{ body: obj.bytes }]);
      const stow = await raw(s.url, s.ca, 'POST', '/dicomweb/studies', { token, headers: { 'content-type': m.contentType }, body: m.body });
      expect(stow.status, stow.text).toBe(200);
      instancePath = `/dicomweb/studies/${obj.study}/series/${obj.series}/instances/${obj.sop}`;
    });
    afterAll(async () => {
      await s?.close();
      await t?.close();
    });

    /** The bystanders: one HTTP/1.1 request and one request on a fresh, polite h2 connection. */
    async function bystandersServed(): Promise<void> {
      const h1 = await raw(s.url, s.ca, 'GET', '/dicomweb/studies', { token, headers: { accept: 'application/dicom+json' } });
      expect(h1.status).toBe(200);
      expect(h1.json.length).toBe(1);
      const polite = await connect(s.url, s.ca);
      try {
        expect(await h2get(polite, '/dicomweb/studies', token)).toBe(200);
      } finally {
        polite.close();
      }
    }

    it(`advertises ${STREAM_LIMIT} concurrent streams per connection and answers no more than that to a client that never reads`, async () => {
      const attackers: http2.ClientHttp2Session[] = [];
      const outcomes: Outcome[] = [];
      const pending: Promise<void>[] = [];
      for (let a = 0; a < 3; a++) {
        // Initial window 0: the server may send headers but not one byte of any body.
        const session = await connect(s.url, s.ca, { settings: { initialWindowSize: 0 } });
        expect(session.remoteSettings.maxConcurrentStreams).toBe(STREAM_LIMIT);
        attackers.push(session);
        const o: Outcome = { answered: 0, refused: 0, sessionGone: false };
        outcomes.push(o);
        session.once('close', () => (o.sessionGone = true));
        for (let i = 0; i < 3 * STREAM_LIMIT; i++) {
          pending.push(
            new Promise<void>((resolve) => {
              let req: http2.ClientHttp2Stream;
              try {
                req = session.request({ ':path': instancePath, authorization: `Bearer ${token}`, accept: 'application/dicom; transfer-syntax=*' });
              } catch {
                o.refused++;
                return resolve();
              }
              req.pause(); // never read
              req.on('response', () => {
                o.answered++;
                resolve();
              });
              req.on('error', () => {
                o.refused++;
                resolve();
              });
              req.on('close', () => resolve());
            }),
          );
        }
      }
      // The server answers (headers) as many streams as it allows; node:http2 obeys the
      // advertised limit and holds the rest back, so they never settle: wait a while.
      // (A client that ignores SETTINGS gets RST_STREAM REFUSED_STREAM from nghttp2 and,
      // after maxSessionRejectedStreams, loses the session: http/tls.ts.)
      await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 5_000))]);
      await bystandersServed();
      for (const o of outcomes) {
        // Exactly the limit: more would mean the bound is not in force, fewer that a client
        // that never reads can starve its own connection of answers (it cannot starve others).
        expect(o.answered).toBe(STREAM_LIMIT);
      }
      for (const session of attackers) session.destroy();
      await bystandersServed();
    });

    it('survives PING and SETTINGS floods from clients that do not read the replies', async () => {
      // The attackers' own client-side limits are raised so the floods really go out.
      const pinger = await connect(s.url, s.ca, { maxOutstandingPings: 1_000_000 });
      // (maxOutstandingSettings is a Node http2 option that @types/node 20 does not declare.)
      const settler = await connect(s.url, s.ca, { maxOutstandingSettings: 1_000_000 } as http2.SecureClientSessionOptions);
      let pings = 0;
      let settings = 0;
      for (let i = 0; i < 20_000 && !pinger.destroyed; i++) {
        try {
          pinger.ping(() => undefined);
          pings++;
        } catch {
          break;
        }
      }
      for (let i = 0; i < 20_000 && !settler.destroyed; i++) {
        try {
          settler.settings({ enablePush: false });
          settings++;
        } catch {
          break;
        }
      }
      expect(pings).toBeGreaterThan(100);
      expect(settings).toBeGreaterThan(100);
      await bystandersServed();
      pinger.destroy();
      settler.destroy();
      await bystandersServed();
      const health = await raw(s.url, s.ca, 'GET', '/healthz');
      expect(health.status).toBe(200);
    });
  });
}
