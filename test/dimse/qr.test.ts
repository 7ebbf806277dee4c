// Query and retrieve through real dcmtk clients: the Debian pydicom sample set stored
// with storescu comes back through findscu, getscu (through socat carrying the
// device certificate: dcmtk 3.6.7's getscu/movescu have no TLS) and movescu to a
// storescp +tls registered as a destination device, with the same attributes and
// pixel data. Other departments' studies are neither found nor retrieved.

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AE, auditOf, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { storeSampleSet, TS_OPTION, type StoreOutcome } from '../helpers/dimse-samples.js';
import { datasetDump, freePort, run, startStoreScp, startTlsTunnel, tlsArgs, type Background } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';
import { systemPrincipal } from '../../src/core/principal.js';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { parseMeta } from '../../src/dimse/part10-reader.js';

interface Uids {
  study: string;
  series: string;
  sop: string;
}

async function uidsOf(file: string): Promise<Uids> {
  const r = await run('dcmdump', ['-q', file]);
  // Top-level elements only (a sequence may hold another SeriesInstanceUID, as in liver_1frame.dcm).
  const v = (tag: string) => new RegExp(`^\\(${tag}\\) UI \\[([^\\]]*)\\]`, 'm').exec(r.stdout)?.[1] ?? '';
  return { study: v('0020,000d'), series: v('0020,000e'), sop: v('0008,0018') };
}

const count = (log: string, re: RegExp): number => log.split('\n').filter((l) => re.test(l)).length;

describe('query and retrieve with dcmtk', () => {
  let env: DimseEnv;
  let modality: DeviceCreds; // radiology writer
  let ws: DeviceCreds; // radiology reader
  let cardioWs: DeviceCreds; // cardiology reader
  let tunnel: Background; // socat for WS01
  let cardioTunnel: Background;
  let outcomes: StoreOutcome[];
  let stored: { file: string; uids: Uids; ts: string }[];
  let cardioStudy: string;
  let out: string;

  beforeAll(async () => {
    env = await startDimseEnv();
    modality = await env.device('CT01', [['radiology', 'writer']]);
    ws = await env.device('WS01', [['radiology', 'reader']]);
    cardioWs = await env.device('CARDWS', [['cardiology', 'reader']]);
    const cardioModality = await env.device('ECHO01', [['cardiology', 'writer']]);
    outcomes = await storeSampleSet(env.port, 'CT01', modality, env.caPath);
    stored = [];
    for (const o of outcomes.filter((x) => x.status === 'Success')) {
      stored.push({ file: o.file, uids: await uidsOf(o.file), ts: parseMeta(await fs.readFile(o.file))!.transferSyntaxUid });
    }
    // A cardiology study: the MR sample under new UIDs (storescu invents them).
    const c = await run('storescu', ['-v', '+IS', '1', '-aet', 'ECHO01', '-aec', AE, ...tlsArgs(cardioModality, env.caPath), '127.0.0.1', String(env.port), path.join(SAMPLE_DIR, 'MR_small.dcm')]);
    expect(c.code).toBe(0);
    const all = await env.db('studies').select('study_uid', 'department_id');
    cardioStudy = all.find((s: { department_id: number }) => s.department_id === env.departments.get('cardiology'))!.study_uid;
    tunnel = await startTlsTunnel(env.port, ws, env.caPath);
    cardioTunnel = await startTlsTunnel(env.port, cardioWs, env.caPath);
    out = path.join(env.dir, 'out');
    await fs.mkdir(out);
  }, 180_000);
  afterAll(async () => {
    await tunnel?.stop();
    await cardioTunnel?.stop();
    await env?.close();
  });

  it('stored the sample set: every file storescu could send is either stored or a refused duplicate', () => {
    expect(stored.length).toBeGreaterThanOrEqual(25);
    // Variants of one object (MR_small_*.dcm…) share their SOP Instance UID: the first wins,
    // the others are refused as a different object under an existing UID (0x0111).
    for (const o of outcomes.filter((x) => x.status !== 'Success' && x.status !== 'ignored' && x.status !== 'not sent')) {
      expect(o.status, path.basename(o.file)).toBe('Unknown Status: 0x111');
    }
  });

  it('C-FIND study root, study level: all radiology studies for the radiology reader, and only those', async () => {
    const studies = new Set(stored.map((s) => s.uids.study));
    const r = await run('findscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, env.caPath), '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '-k', 'PatientName', '-k', 'NumberOfStudyRelatedInstances', '127.0.0.1', String(env.port)]);
    const log = r.stdout + r.stderr;
    expect(r.code).toBe(0);
    expect(count(log, /Find Response: \d+ \(Pending\)/)).toBe(studies.size);
    expect(log).toMatch(/Received Final Find Response \(Success\)/);
    expect(log).not.toContain(cardioStudy);
    // The cardiology reader sees its one study and nothing of radiology.
    const c = await run('findscu', ['-v', '-S', '-aet', 'CARDWS', '-aec', AE, ...tlsArgs(cardioWs, env.caPath), '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '127.0.0.1', String(env.port)]);
    const clog = c.stdout + c.stderr;
    expect(count(clog, /Find Response: \d+ \(Pending\)/)).toBe(1);
    expect(clog).toContain(cardioStudy);
  });

  it('C-FIND patient root at patient, study, series and image level', async () => {
    const mr = stored.find((s) => path.basename(s.file) === 'MR_small.dcm')!;
    const base = ['-v', '-P', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, env.caPath)];
    const patients = await run('findscu', [...base, '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID', '-k', 'PatientName', '127.0.0.1', String(env.port)]);
    expect(count(patients.stdout + patients.stderr, /Find Response: \d+ \(Pending\)/)).toBeGreaterThanOrEqual(5);
    const pid = /\(0010,0020\) LO \[([^\]]*)\]/.exec((await run('dcmdump', ['-q', '+P', '0010,0020', mr.file])).stdout)![1];
    const series = await run('findscu', [...base, '-k', 'QueryRetrieveLevel=SERIES', '-k', `PatientID=${pid}`, '-k', `StudyInstanceUID=${mr.uids.study}`, '-k', 'SeriesInstanceUID', '-k', 'Modality', '127.0.0.1', String(env.port)]);
    const slog = series.stdout + series.stderr;
    expect(count(slog, /Find Response: \d+ \(Pending\)/)).toBe(1);
    expect(slog).toContain(mr.uids.series);
    const images = await run('findscu', [...base, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `PatientID=${pid}`, '-k', `StudyInstanceUID=${mr.uids.study}`, '-k', `SeriesInstanceUID=${mr.uids.series}`, '-k', 'SOPInstanceUID', '127.0.0.1', String(env.port)]);
    expect(images.stdout + images.stderr).toContain(mr.uids.sop);
    // Study Root has no PATIENT level (PS3.4 C.6.2): refused with 0xA900.
    const wrong = await run('findscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, env.caPath), '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID', '127.0.0.1', String(env.port)]);
    expect(wrong.stdout + wrong.stderr).toMatch(/Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/);
  });

  it('C-CANCEL stops a C-FIND: the final response is Cancel', async () => {
    const r = await run('findscu', ['-v', '-S', '--cancel', '2', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, env.caPath), '-k', 'QueryRetrieveLevel=IMAGE', '-k', 'SOPInstanceUID', '127.0.0.1', String(env.port)]);
    const log = r.stdout + r.stderr;
    expect(log).toMatch(/Final Find Response \(Cancel: MatchingTerminatedDueToCancelRequest\)/);
    expect(count(log, /Find Response: \d+ \(Pending\)/)).toBeLessThan(stored.length);
  });

  it('C-GET through socat: every stored sample comes back with the same attributes and pixel data', async () => {
    const mismatches: string[] = [];
    for (const s of stored) {
      const dir = path.join(out, `get-${path.basename(s.file)}`);
      await fs.mkdir(dir);
      const opt = TS_OPTION[s.ts];
      const r = await run('getscu', ['-v', '-S', '+B', `+x${opt}`, '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${s.uids.study}`, '-k', `SeriesInstanceUID=${s.uids.series}`, '-k', `SOPInstanceUID=${s.uids.sop}`, '-od', dir, '127.0.0.1', String(tunnel.port)]);
      const files = await fs.readdir(dir);
      if (files.length !== 1) {
        mismatches.push(`${path.basename(s.file)}: ${files.length} files; ${(r.stdout + r.stderr).split('\n').filter((l) => /E:|Response/.test(l)).join(' | ')}`);
        continue;
      }
      const got = path.join(dir, files[0]);
      // The stored transfer syntax was accepted: the data set is the stored one, byte for byte.
      // (getscu 3.6.7 proposes explicit VR little endian even with +xi: implicit objects are transcoded.)
      const expectedTs = s.ts === '1.2.840.10008.1.2' ? '1.2.840.10008.1.2.1' : s.ts;
      expect(parseMeta(await fs.readFile(got))!.transferSyntaxUid, path.basename(s.file)).toBe(expectedTs);
      const transcoded = expectedTs !== s.ts;
      if ((await datasetDump(got, { transcoded })) !== (await datasetDump(s.file, { transcoded }))) mismatches.push(`${path.basename(s.file)}: dump differs`);
    }
    expect(mismatches).toEqual([]);
    const rows = (await auditOf(env, 'retrieve')).filter((r) => r.details.via === 'dimse' && r.details.operation === 'C-GET');
    expect(rows.length).toBe(stored.length);
    expect(rows.every((r) => r.outcome === 'success' && r.principalName === 'WS01')).toBe(true);
  });

  it('C-GET transcodes to a native syntax when the stored one is not accepted (RLE → explicit VR little endian)', async () => {
    const rle = stored.find((s) => s.ts === '1.2.840.10008.1.2.5')!;
    const dir = path.join(out, 'get-transcoded');
    await fs.mkdir(dir);
    const r = await run('getscu', ['-v', '-S', '+B', '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${rle.uids.study}`, '-k', `SeriesInstanceUID=${rle.uids.series}`, '-k', `SOPInstanceUID=${rle.uids.sop}`, '-od', dir, '127.0.0.1', String(tunnel.port)]);
    const files = await fs.readdir(dir);
    expect(files.length, r.stdout + r.stderr).toBe(1);
    const got = path.join(dir, files[0]);
    expect(parseMeta(await fs.readFile(got))!.transferSyntaxUid).toBe('1.2.840.10008.1.2.1');
    // Same pixels as dcmtk's own RLE decoder makes of the original.
    const decoded = path.join(dir, 'reference.dcm');
    expect((await run('dcmdrle', [rle.file, decoded])).code).toBe(0);
    const pixels = async (f: string): Promise<Buffer> => {
      const b = await fs.readFile(f);
      const dict = dcmjs.data.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)).dict;
      return Buffer.concat((dict['7FE00010'].Value as ArrayBuffer[]).map((v) => Buffer.from(v)));
    };
    const [a, b] = [await pixels(got), await pixels(decoded)];
    expect(a.length).toBeGreaterThan(0);
    expect(a.equals(b)).toBe(true);
  });

  it('C-GET of another department\'s study retrieves nothing', async () => {
    const dir = path.join(out, 'get-cross');
    await fs.mkdir(dir);
    const r = await run('getscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${cardioStudy}`, '-od', dir, '127.0.0.1', String(tunnel.port)]);
    expect(await fs.readdir(dir)).toEqual([]);
    expect(r.stdout + r.stderr).toMatch(/Final C-GET Response|C-GET Response/);
    // The cardiology reader gets it.
    const c = await run('getscu', ['-v', '-S', '-aet', 'CARDWS', '-aec', AE, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${cardioStudy}`, '-od', dir, '127.0.0.1', String(cardioTunnel.port)]);
    expect((await fs.readdir(dir)).length, c.stdout + c.stderr).toBe(1);
  });

  describe('C-MOVE to a storescp +tls registered as a destination device', () => {
    let scp: Background;
    let scpOut: string;
    let other: Background;
    let otherOut: string;

    beforeAll(async () => {
      scpOut = path.join(env.dir, 'dest1');
      otherOut = path.join(env.dir, 'dest2');
      await fs.mkdir(scpOut);
      await fs.mkdir(otherOut);
      const cert = await env.serverCertificate('DEST1');
      scp = await startStoreScp('DEST1', cert, env.caPath, scpOut);
      await env.device('DEST1', [['radiology', 'reader']], { host: '127.0.0.1', port: scp.port, certificate: false });
      const otherCert = await env.serverCertificate('DEST2');
      other = await startStoreScp('DEST2', otherCert, env.caPath, otherOut);
      await env.device('DEST2', [['cardiology', 'reader']], { host: '127.0.0.1', port: other.port, certificate: false });
    });
    afterAll(async () => {
      await scp?.stop();
      await other?.stop();
    });

    it('moves a study: the destination receives the same objects', async () => {
      const mr = stored.find((s) => path.basename(s.file) === 'MR_small.dcm')!;
      const inStudy = stored.filter((s) => s.uids.study === mr.uids.study);
      const r = await run('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'DEST1', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${mr.uids.study}`, '127.0.0.1', String(tunnel.port)]);
      const log = r.stdout + r.stderr;
      expect(log, scp.output()).toMatch(/Received Final Move Response \(Success\)/);
      const files = await fs.readdir(scpOut);
      expect(files.length).toBe(inStudy.length);
      for (const f of files) {
        const u = await uidsOf(path.join(scpOut, f));
        const original = inStudy.find((s) => s.uids.sop === u.sop)!;
        expect(await datasetDump(path.join(scpOut, f))).toBe(await datasetDump(original.file));
      }
      const rows = (await auditOf(env, 'retrieve')).filter((r) => r.details.via === 'dimse' && r.details.operation === 'C-MOVE');
      expect(rows.at(-1)).toMatchObject({ outcome: 'success', principalName: 'WS01', details: expect.objectContaining({ destination: 'DEST1', completed: inStudy.length, failed: 0 }) });
    });

    it('moves to a destination presenting its own admin-issued certificate; after re-issue the old one is refused (pinned)', async () => {
      // The real workflow: register the workstation with host and port, issue its
      // certificate through the admin service (serverAuth is added because it is a
      // C-MOVE destination), run its storage SCP with that certificate.
      const port = await freePort();
      const creds = await env.device('DEST3', [['radiology', 'reader']], { host: '127.0.0.1', port });
      const out3 = path.join(env.dir, 'dest3');
      await fs.mkdir(out3);
      const scp3 = await startStoreScp('DEST3', creds, env.caPath, out3, [], port);
      try {
        const mr = stored.find((s) => path.basename(s.file) === 'MR_small.dcm')!;
        const move = () => run('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'DEST3', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${mr.uids.study}`, '127.0.0.1', String(tunnel.port)]);
        const ok = await move();
        expect(ok.stdout + ok.stderr, scp3.output()).toMatch(/Received Final Move Response \(Success\)/);
        const received = (await fs.readdir(out3)).length;
        expect(received).toBeGreaterThan(0);
        // Re-issue: the certificate the SCP still presents is now revoked, so nothing is sent.
        await env.identity.admin.issueDeviceCertificate(systemPrincipal, 'DEST3', {});
        const refused = await move();
        expect(refused.stdout + refused.stderr).toMatch(/Final Move Response \((?!Success)/);
        expect((await fs.readdir(out3)).length).toBe(received);
      } finally {
        await scp3.stop();
      }
    });

    it('refuses an unregistered destination with 0xA801', async () => {
      const mr = stored[0];
      const r = await run('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'NOBODY', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${mr.uids.study}`, '127.0.0.1', String(tunnel.port)]);
      expect(r.stdout + r.stderr).toMatch(/Final Move Response \(Refused: MoveDestinationUnknown\)/);
    });

    it('sends nothing to a registered destination that may not read the department', async () => {
      const mr = stored[0];
      const before = (await fs.readdir(otherOut)).length;
      const r = await run('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'DEST2', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${mr.uids.study}`, '127.0.0.1', String(tunnel.port)]);
      expect(r.stdout + r.stderr).toMatch(/Final Move Response \((?!Success)/);
      expect((await fs.readdir(otherOut)).length).toBe(before);
    });

    it('a move of two studies where the destination may read only one: that one is sent, the other counted as failed (PS3.4 C.4.2.3.1)', async () => {
      // The requestor reads both departments; DEST1 reads radiology only. The instances the
      // destination may not read are skipped in the sub-operation loop (and never opened
      // ahead of their turn: lib/one-ahead.ts `wanted`).
      const both = await env.device('BOTHWS', [['radiology', 'reader'], ['cardiology', 'reader']]);
      const bothTunnel = await startTlsTunnel(env.port, both, env.caPath);
      try {
        const mr = stored.find((s) => path.basename(s.file) === 'MR_small.dcm')!;
        const inStudy = stored.filter((s) => s.uids.study === mr.uids.study);
        // Emptied first: storescp names files by SOP Instance UID, and an earlier move sent these.
        for (const f of await fs.readdir(scpOut)) await fs.rm(path.join(scpOut, f));
        const r = await run('movescu', ['-v', '-S', '-aet', 'BOTHWS', '-aec', AE, '-aem', 'DEST1', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${cardioStudy}\\${mr.uids.study}`, '127.0.0.1', String(bothTunnel.port)]);
        const log = r.stdout + r.stderr;
        expect(log, scp.output()).toMatch(/Received Final Move Response \(Warning/);
        const received = await fs.readdir(scpOut);
        const uids = await Promise.all(received.map((f) => uidsOf(path.join(scpOut, f))));
        expect(uids.map((u) => u.sop).sort()).toEqual(inStudy.map((s) => s.uids.sop).sort());
        const rows = (await auditOf(env, 'retrieve')).filter((x) => x.details.via === 'dimse' && x.details.operation === 'C-MOVE');
        expect(rows.at(-1)).toMatchObject({ principalName: 'BOTHWS', details: expect.objectContaining({ destination: 'DEST1', completed: inStudy.length, failed: 1 }) });
      } finally {
        await bothTunnel.stop();
      }
    });

    it('moves nothing of another department\'s study', async () => {
      const before = (await fs.readdir(scpOut)).length;
      const r = await run('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'DEST1', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${cardioStudy}`, '127.0.0.1', String(tunnel.port)]);
      expect(r.stdout + r.stderr).toMatch(/Final Move Response \((?!Success)/);
      expect((await fs.readdir(scpOut)).length).toBe(before);
    });
  });

  it('logged no patient data', () => {
    const names = ['CompressedSamples', 'Patient,The', 'CompressedSamples^MR1', 'NEMA^NEMA'];
    for (const n of names) expect(env.logs.join('\n')).not.toContain(n);
  });
});
