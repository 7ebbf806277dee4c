// C-GET and C-MOVE send stored objects in chunks that are reused once the socket is done
// with them (src/lib/read-chunks.ts, issue 13), and cut PDVs across chunk boundaries
// without copying (protocol/connection.ts writePdvs). A chunk reused too early would
// put one object's bytes into another's: so several objects of several chunks each, of
// sizes that put chunk and PDV boundaries everywhere, go out at once to two getscu (two
// different maximum PDU sizes, PS3.8 §9.3.3.2) and a movescu's destination, and every
// data set must come back byte for byte as stored (PS3.4 C.4.2, C.4.3: the stored
// transfer syntax was accepted, so no re-encoding).

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AE, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { run, startStoreScp, startTlsTunnel, tlsArgs, type Background } from '../helpers/dimse-tools.js';
import { freshUid } from '../helpers/dicomweb-data.js';
import { BIG_CT_ROWS, bigCt } from '../helpers/big-objects.js';
import dcmjs from '../../src/core/dicom/dcmjs.js';
import { parseMeta } from '../../src/dimse/part10-reader.js';
import { READ_CHUNK_BYTES } from '../../src/lib/read-chunks.js';
import { readAll } from '../../src/lib/read-all.js';

const dataSetOf = (part10: Buffer): Buffer => part10.subarray(parseMeta(part10)!.end);

describe('retrieve with reused read chunks', () => {
  let env: DimseEnv;
  let ws: DeviceCreds;
  let tunnel: Background;
  let scp: Background;
  let study: string;
  /** SOP instance UID → the stored data set bytes. */
  const stored = new Map<string, Buffer>();

  beforeAll(async () => {
    env = await startDimseEnv();
    const modality = await env.device('CT01', [['radiology', 'writer']]);
    ws = await env.device('WS01', [['radiology', 'reader']]);
    study = freshUid();
    const series = freshUid();
    const dir = path.join(env.dir, 'in');
    await fs.mkdir(dir);
    const rows = BIG_CT_ROWS;
    for (const [i, r] of rows.entries()) await fs.writeFile(path.join(dir, `${i}.dcm`), bigCt(study, series, r));
    const s = await run('storescu', ['-aet', 'CT01', '-aec', AE, ...tlsArgs(modality, env.caPath), '127.0.0.1', String(env.port), ...rows.map((_, i) => path.join(dir, `${i}.dcm`))]);
    expect(s.code, s.stderr).toBe(0);
    const rowsDb = await env.db('instances').select('sop_instance_uid', 'object_key');
    for (const row of rowsDb) stored.set(row.sop_instance_uid, dataSetOf(await readAll(await env.blobs.get(row.object_key))));
    expect(stored.size).toBe(rows.length);
    expect([...stored.values()].filter((b) => b.length > READ_CHUNK_BYTES).length).toBeGreaterThanOrEqual(5);
    tunnel = await startTlsTunnel(env.port, ws, env.caPath);
    const dest = path.join(env.dir, 'dest');
    await fs.mkdir(dest);
    scp = await startStoreScp('DEST1', await env.serverCertificate('DEST1'), env.caPath, dest, ['+B', '+uf']);
    await env.device('DEST1', [['radiology', 'reader']], { host: '127.0.0.1', port: scp.port, certificate: false });
  }, 120_000);
  afterAll(async () => {
    await tunnel?.stop();
    await scp?.stop();
    await env?.close();
  });

  it('two C-GETs (8 KiB and 16 KiB PDUs) and a C-MOVE at once, twice over: every data set byte for byte', async () => {
    const received: { by: string; file: string }[] = [];
    for (let round = 0; round < 2; round++) {
      const outs = ['get8k', 'get16k'].map((n) => path.join(env.dir, `${n}-${round}`));
      for (const o of outs) await fs.mkdir(o);
      const get = (out: string, pdu: string) =>
        run('getscu', ['-S', '+B', '-pdu', pdu, '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, '-od', out, '127.0.0.1', String(tunnel.port)]);
      const [g1, g2, m] = await Promise.all([
        get(outs[0], '8192'),
        get(outs[1], '16384'),
        run('movescu', ['-S', '-aet', 'WS01', '-aec', AE, '-aem', 'DEST1', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, '127.0.0.1', String(tunnel.port)]),
      ]);
      expect([g1.code, g2.code, m.code], g1.stderr + g2.stderr + m.stderr).toEqual([0, 0, 0]);
      for (const o of outs) for (const f of await fs.readdir(o)) received.push({ by: path.basename(o), file: path.join(o, f) });
    }
    const dest = path.join(env.dir, 'dest');
    for (const f of await fs.readdir(dest)) received.push({ by: 'move', file: path.join(dest, f) });
    expect(received.length).toBe(stored.size * 6);
    const wrong: string[] = [];
    for (const r of received) {
      const bytes = await fs.readFile(r.file);
      const want = stored.get(sopOf(bytes));
      if (!want || !dataSetOf(bytes).equals(want)) wrong.push(`${r.by} ${path.basename(r.file)}`);
    }
    expect(wrong).toEqual([]);
  }, 120_000);
});

/** The Media Storage SOP Instance UID of a Part 10 file (its meta header, PS3.10 §7.1). */
function sopOf(part10: Buffer): string {
  const d = dcmjs.data.DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length), { untilTag: '00080016' });
  return String(d.meta['00020003'].Value[0]);
}
