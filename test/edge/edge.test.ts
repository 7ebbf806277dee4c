// `tresor edge` end to end (issue 12): dcmtk tools without TLS talk to the edge, the
// edge talks mutual TLS to a real Tresor (test/helpers/dimse-env.ts) with each
// device's own certificate. The edge's config is the bundle writeEdgeBundle makes
// from the certificates Tresor issued. A counting TCP proxy in front of Tresor shows
// that refused associations never open a connection to Tresor.

import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemPrincipal } from '../../src/core/principal.js';
import { parseMeta } from '../../src/dimse/part10-reader.js';
import { writeEdgeBundle } from '../../src/edge/bundle.js';
import { loadEdgeConfig, type EdgeConfig } from '../../src/edge/config.js';
import { startEdge, type RunningEdge } from '../../src/edge/edge.js';
import { createLogger } from '../../src/log.js';
import { AE, auditOf, startDimseEnv, type DimseEnv } from '../helpers/dimse-env.js';
import { associate, associateRq, connectRaw, echoCommand, pdata, UID } from '../helpers/dimse-raw.js';
import { TS_OPTION } from '../helpers/dimse-samples.js';
import { datasetDump, freePort, run } from '../helpers/dimse-tools.js';
import { runDevice, startCountingProxy, startPlainStoreScp, storeSampleSetPlain, type CountingProxy, type PlainScp } from './edge-tools.js';

const EDGE_NAME = 'TESTEDGE';
const count = (log: string, re: RegExp): number => log.split('\n').filter((l) => re.test(l)).length;

async function uidsOf(file: string) {
  const r = await run('dcmdump', ['-q', file]);
  const v = (tag: string) => new RegExp(`^\\(${tag}\\) UI \\[([^\\]]*)\\]`, 'm').exec(r.stdout)?.[1] ?? '';
  return { study: v('0020,000d'), series: v('0020,000e'), sop: v('0008,0018') };
}

/** Sends raw bytes on a plain connection, collects what comes back until the edge closes it. */
function rawExchange(port: number, bytes: Buffer, localAddress?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    setTimeout(() => {
      s.destroy();
      reject(new Error('the edge did not close the connection'));
    }, 10_000).unref();
  });
}

describe('tresor edge: legacy devices through the gateway', () => {
  let env: DimseEnv;
  let proxy: CountingProxy;
  let edge: RunningEdge;
  let cfg: EdgeConfig;
  let scp: PlainScp;
  let scpOut: string;
  const edgeLogs: string[] = [];
  const stored: { file: string; uids: { study: string; series: string; sop: string }; ts: string }[] = [];
  const port = (ae: string) => edge.upstream.find((u) => u.aeTitles.includes(ae))!.port;

  beforeAll(async () => {
    env = await startDimseEnv();
    proxy = await startCountingProxy(env.port);
    scpOut = path.join(env.dir, 'ws01-scp');
    await fs.mkdir(scpOut);
    scp = await startPlainStoreScp('WS01', scpOut);
    const downstreamPort = await freePort();
    const bundleDir = path.join(env.dir, 'edge');
    const issue = async (ae: string, roles: [string, 'reader' | 'writer'][], opts: { host?: string; port?: number } = {}) => {
      await env.device(ae, roles, { ...opts, certificate: false });
      return env.identity.admin.issueDeviceCertificate(systemPrincipal, ae, {});
    };
    const bundle = async (ae: string, issued: { certificate: string; privateKey?: string }, extra: Partial<Parameters<typeof writeEdgeBundle>[1]> = {}) =>
      writeEdgeBundle(bundleDir, {
        edgeName: EDGE_NAME,
        aeTitle: ae,
        certificatePem: issued.certificate,
        privateKeyPem: issued.privateKey!,
        caPem: env.pki.caCertPem,
        tresor: { host: '127.0.0.1', port: proxy.port, aeTitle: AE },
        listen: { host: '127.0.0.1', port: 0 },
        allow: ['127.0.0.1'],
        ...extra,
      });
    await bundle('CT01', await issue('CT01', [['radiology', 'writer']]));
    // WS01 is also a C-MOVE destination: Tresor's record points at the edge's downstream port.
    await bundle('WS01', await issue('WS01', [['radiology', 'reader']], { host: '127.0.0.1', port: downstreamPort }), {
      storageScp: { listen: { host: '127.0.0.1', port: downstreamPort }, target: { host: '127.0.0.1', port: scp.port } },
    });
    await bundle('LAB01', await issue('LAB01', [['radiology', 'reader']]), { allow: ['127.0.0.2'] });
    const configFile = await bundle('REV01', await issue('REV01', [['radiology', 'reader']]));
    cfg = await loadEdgeConfig(configFile);
    cfg.timeouts = { ...cfg.timeouts, artimMs: 8_000, connectMs: 3_000, idleMs: 20_000, pduMs: 5_000, writeStallMs: 5_000 };
    const logger = createLogger('debug', new Writable({ write: (c, _e, cb) => (edgeLogs.push(String(c)), cb()) }) as never);
    edge = await startEdge(cfg, logger);
  }, 180_000);

  afterAll(async () => {
    await edge?.close();
    await scp?.stop();
    await proxy?.close();
    await env?.close();
  });

  it('logs one line when it listens, naming every listener', () => {
    const lines = edgeLogs.filter((l) => l.includes('tresor edge listening'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ edge: EDGE_NAME, downstream: [expect.objectContaining({ aeTitle: 'WS01' })] });
    expect(edge.upstream).toHaveLength(4);
  });

  it('C-ECHO through the edge; Tresor sees the device with its certificate and records the edge', async () => {
    const r = await runDevice('echoscu', ['-v', '-aet', 'CT01', '-aec', AE, '127.0.0.1', String(port('CT01'))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rows = await auditOf(env, 'association');
    expect(rows.at(-1)).toMatchObject({ outcome: 'success', principalName: 'CT01', details: expect.objectContaining({ edge: EDGE_NAME, callingAe: 'CT01' }) });
  });

  it('C-STORE: storescu stores the sample set, each file with the option for its transfer syntax', async () => {
    const outcomes = await storeSampleSetPlain(port('CT01'), 'CT01', AE);
    for (const o of outcomes.filter((x) => x.status === 'Success')) {
      stored.push({ file: o.file, uids: await uidsOf(o.file), ts: parseMeta(await fs.readFile(o.file))!.transferSyntaxUid });
    }
    expect(stored.length).toBeGreaterThanOrEqual(25);
    // Variants of one object share their SOP Instance UID: refused as a different object (0x0111), as in test/dimse/qr.test.ts.
    for (const o of outcomes.filter((x) => x.status !== 'Success' && x.status !== 'ignored' && x.status !== 'not sent')) {
      expect(o.status, path.basename(o.file)).toBe('Unknown Status: 0x111');
    }
    // One `store` row per association (PS3.15 A.5.3.10), counting what it stored.
    const rows = (await auditOf(env, 'store')).filter((r) => r.principalName === 'CT01');
    // A byte-identical re-send answers Success and is counted as a duplicate (core/ingest.ts).
    expect(rows.reduce((n, r) => n + Number(r.details.stored ?? 0) + Number(r.details.duplicates ?? 0), 0)).toBe(stored.length);
  }, 300_000);

  it('C-FIND: findscu finds every stored study', async () => {
    const studies = new Set(stored.map((s) => s.uids.study));
    const r = await runDevice('findscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '127.0.0.1', String(port('WS01'))]);
    const log = r.stdout + r.stderr;
    expect(r.code, log).toBe(0);
    expect(count(log, /Find Response: \d+ \(Pending\)/)).toBe(studies.size);
    for (const s of studies) expect(log).toContain(s);
  });

  it('C-GET: getscu retrieves every stored sample with the same attributes and pixel data', async () => {
    const mismatches: string[] = [];
    for (const s of stored) {
      const dir = path.join(env.dir, `get-${path.basename(s.file)}`);
      await fs.mkdir(dir);
      const r = await runDevice('getscu', ['-v', '-S', '+B', `+x${TS_OPTION[s.ts]}`, '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${s.uids.study}`, '-k', `SeriesInstanceUID=${s.uids.series}`, '-k', `SOPInstanceUID=${s.uids.sop}`, '-od', dir, '127.0.0.1', String(port('WS01'))]);
      const files = await fs.readdir(dir);
      if (files.length !== 1) {
        mismatches.push(`${path.basename(s.file)}: ${files.length} files; ${(r.stdout + r.stderr).split('\n').filter((l) => /E:|Response/.test(l)).join(' | ')}`);
        continue;
      }
      // getscu 3.6.7 proposes explicit VR little endian even with +xi: implicit objects are transcoded (test/dimse/qr.test.ts).
      const transcoded = s.ts === '1.2.840.10008.1.2';
      if ((await datasetDump(path.join(dir, files[0]), { transcoded })) !== (await datasetDump(s.file, { transcoded }))) mismatches.push(`${path.basename(s.file)}: dump differs`);
    }
    expect(mismatches).toEqual([]);
  }, 300_000);

  it('C-MOVE: movescu moves a study to the device\'s plain storescp behind the edge\'s downstream side', async () => {
    const mr = stored.find((s) => path.basename(s.file) === 'MR_small.dcm')!;
    const inStudy = stored.filter((s) => s.uids.study === mr.uids.study);
    const r = await runDevice('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'WS01', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${mr.uids.study}`, '127.0.0.1', String(port('WS01'))]);
    expect(r.stdout + r.stderr, scp.output()).toMatch(/Received Final Move Response \(Success\)/);
    const files = await fs.readdir(scpOut);
    expect(files.length).toBe(inStudy.length);
    for (const f of files) {
      const u = await uidsOf(path.join(scpOut, f));
      const original = inStudy.find((s) => s.uids.sop === u.sop)!;
      expect(await datasetDump(path.join(scpOut, f))).toBe(await datasetDump(original.file));
    }
    const rows = await auditOf(env, 'retrieve');
    expect(rows.at(-1)).toMatchObject({ outcome: 'success', principalName: 'WS01', details: expect.objectContaining({ operation: 'C-MOVE', destination: 'WS01', completed: inStudy.length, failed: 0 }) });
  }, 120_000);

  describe('refusals: an A-ASSOCIATE-RJ, a log line, and no connection to Tresor', () => {
    const refused = async (args: string[], listener: string, from?: string) => {
      const before = proxy.connections();
      const t0 = Date.now();
      const r = await runDevice('echoscu', ['-v', ...args, '127.0.0.1', String(port(listener))], { from });
      const log = r.stdout + r.stderr;
      expect(r.code, log).not.toBe(0);
      expect(log).toMatch(/Association Rejected/);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(proxy.connections()).toBe(before);
      return log;
    };
    const loggedReason = (reason: string) => edgeLogs.some((l) => l.includes('edge association refused') && l.includes(`"reason":"${reason}"`));

    it('wrong source address (the device is only allowed from 127.0.0.2)', async () => {
      await refused(['-aet', 'LAB01', '-aec', AE], 'LAB01');
      expect(loggedReason('source-address-not-allowed')).toBe(true);
    });

    it('wrong source address (CT01 from 127.0.0.2)', async () => {
      await refused(['-aet', 'CT01', '-aec', AE], 'CT01', '127.0.0.2');
    });

    it('wrong calling AE: another served device on CT01\'s listener', async () => {
      await refused(['-aet', 'WS01', '-aec', AE], 'CT01');
      expect(loggedReason('calling-ae-not-on-this-listener')).toBe(true);
    });

    it('an AE the edge does not serve', async () => {
      await refused(['-aet', 'NOBODY', '-aec', AE], 'CT01');
      expect(loggedReason('calling-ae-not-served')).toBe(true);
    });

    it('a called AE that is not Tresor\'s', async () => {
      await refused(['-aet', 'CT01', '-aec', 'OTHERPACS'], 'CT01');
      expect(loggedReason('called-ae-not-tresor')).toBe(true);
    });

    it('an A-ASSOCIATE-RQ followed at once by P-DATA reaches nothing upstream (wrong address, and even the right one)', async () => {
      const rq = associateRq({ callingAe: 'CT01', calledAe: AE, contexts: [{ id: 1, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] }] });
      const burst = Buffer.concat([rq, pdata(1, true, true, echoCommand(1))]);
      const before = proxy.connections();
      const associations = (await auditOf(env, 'association')).length;
      const wrong = await rawExchange(port('CT01'), burst, '127.0.0.2');
      // The RQ is judged first (RJ); nothing else is answered.
      expect(wrong[0]).toBe(0x03);
      const right = await rawExchange(port('CT01'), burst);
      // From the allowed address the pipelined P-DATA is an A-ABORT before anything is forwarded (PS3.8 §9.2 AA-8).
      expect([...right.subarray(0, 1)]).toEqual([0x07]);
      await new Promise((r) => setTimeout(r, 300));
      expect(proxy.connections()).toBe(before);
      expect(await auditOf(env, 'association')).toHaveLength(associations);
    });

    it('a device whose certificate Tresor revoked gets a rejection, not a hang', async () => {
      await env.identity.admin.revokeDeviceCertificate(systemPrincipal, 'REV01');
      const t0 = Date.now();
      const r = await runDevice('echoscu', ['-v', '-aet', 'REV01', '-aec', AE, '127.0.0.1', String(port('REV01'))]);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/Association Rejected/);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(edgeLogs.some((l) => l.includes('rejected-by-far-side'))).toBe(true);
      const rows = await auditOf(env, 'association');
      expect(rows.at(-1)).toMatchObject({ outcome: 'denied', details: expect.objectContaining({ callingAe: 'REV01', edge: EDGE_NAME }) });
    });

    it('downstream: only Tresor may reach the device\'s storage SCP (another device\'s certificate, or none, is rejected)', async () => {
      const downstream = edge.downstream[0].port;
      const before = (await fs.readdir(scpOut)).length;
      const ct = cfg.devices.find((d) => d.aeTitle === 'CT01')!;
      const rq = { callingAe: AE, calledAe: 'WS01', contexts: [{ id: 1, abstractSyntax: UID.Verification, transferSyntaxes: [UID.ImplicitLE] }] };
      for (const creds of [{ keyPem: ct.keyPem, certPem: ct.certPem }, {}]) {
        const c = await connectRaw(downstream, { caPath: env.caPath, ...creds });
        const answer = await associate(c, rq);
        expect(answer === 'closed' ? 'closed' : answer.type).toBe(0x03);
        c.destroy();
      }
      expect(edgeLogs.filter((l) => l.includes('"reason":"not-tresor"')).length).toBe(2);
      expect((await fs.readdir(scpOut)).length).toBe(before);
    });

    it('Tresor unreachable: the device gets a (transient) rejection', async () => {
      const closedPort = await freePort();
      const logger = createLogger('silent');
      const other = await startEdge({ ...cfg, tresor: { ...cfg.tresor, port: closedPort }, devices: cfg.devices.filter((d) => d.aeTitle === 'CT01') }, logger);
      try {
        const r = await runDevice('echoscu', ['-v', '-aet', 'CT01', '-aec', AE, '127.0.0.1', String(other.upstream[0].port)]);
        expect(r.code).not.toBe(0);
        expect(r.stdout + r.stderr).toMatch(/Association Rejected[\s\S]*Transient/i);
      } finally {
        await other.close();
      }
    });
  });

  it('logged no patient data', () => {
    const all = edgeLogs.join('\n');
    for (const n of ['CompressedSamples', 'Patient,The', 'CompressedSamples^MR1', 'NEMA^NEMA']) expect(all).not.toContain(n);
  });
});
