// ARCHITECTURE.md rule 8 through the DIMSE door: each request and each association is
// audited exactly once, by the core, with the shared vocabulary and `via: 'dimse'` —
// one `association` row per association (C-ECHO adds none), one `store` row per
// association that carried C-STOREs (PS3.15 A.5.3.10), one `query` row per C-FIND
// however many pages, one `retrieve` row per C-GET and per C-MOVE.

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reissue } from '../helpers/dicomweb-data.js';
import { freePort, run, startStoreScp, startTlsTunnel, tlsArgs, type Background } from '../helpers/dimse-tools.js';
import { startAuditServer, type AuditServer } from '../helpers/audit-server.js';

const AE = 'TRESOR';

describe('DIMSE: audit rows per request and association', () => {
  let s: AuditServer;
  let ct: { keyPath: string; certPath: string };
  let ws: { keyPath: string; certPath: string };
  let tunnel: Background;
  let scp: Background;
  const files: string[] = [];
  const studies: string[] = [];

  beforeAll(async () => {
    s = await startAuditServer();
    ct = await s.device('CT01', [['radiology', 'writer']]);
    ws = await s.device('WS01', [['radiology', 'reader']]);
    const destPort = await freePort();
    const dest = await s.device('DEST1', [['radiology', 'reader']], { host: '127.0.0.1', port: destPort });
    const destOut = path.join(s.dir, 'dest1');
    await fs.mkdir(destOut);
    scp = await startStoreScp('DEST1', dest, s.caPath, destOut, [], destPort);
    tunnel = await startTlsTunnel(s.dimse.port, ws, s.caPath);
    // Three instances of three studies: a STUDY-level C-FIND has 3 matches, 2 pages of 2.
    for (let i = 0; i < 3; i++) {
      const r = reissue();
      const f = path.join(s.dir, `in-${i}.dcm`);
      await fs.writeFile(f, r.bytes);
      files.push(f);
      studies.push(r.study);
    }
  });
  afterAll(async () => {
    await tunnel?.stop();
    await scp?.stop();
    await s?.close();
  });

  const actions = (rows: { action: string }[]) => rows.map((r) => r.action);

  it('one C-STORE association of 3 instances: one association row and one store row', async () => {
    const rows = await s.mark();
    const r = await run('storescu', ['-aet', 'CT01', '-aec', AE, ...tlsArgs(ct, s.caPath), '127.0.0.1', String(s.dimse.port), ...files]);
    expect(r.code, r.stderr).toBe(0);
    const got = await rows();
    expect(actions(got)).toEqual(['association', 'store']);
    expect(got[0]).toMatchObject({ outcome: 'success', principalName: 'CT01', details: expect.objectContaining({ via: 'dimse', authentication: 'certificate' }) });
    expect(got[1]).toMatchObject({ outcome: 'success', principalName: 'CT01', details: expect.objectContaining({ via: 'dimse', instances: 3, stored: 3, failed: 0, studies: 3, ended: 'released' }) });
    expect([...got[1].studyUids].sort()).toEqual([...studies].sort());
  });

  it('C-ECHO: the association row only', async () => {
    const rows = await s.mark();
    const r = await run('echoscu', ['-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, s.caPath), '127.0.0.1', String(s.dimse.port)]);
    expect(r.code, r.stderr).toBe(0);
    expect(actions(await rows())).toEqual(['association']);
  });

  it('one paged C-FIND (3 matches, pages of 2): one query row', async () => {
    const rows = await s.mark();
    const r = await run('findscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, s.caPath), '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '127.0.0.1', String(s.dimse.port)]);
    expect(r.code, r.stderr).toBe(0);
    expect((r.stdout + r.stderr).match(/Find Response: \d+ \(Pending\)/g)).toHaveLength(3);
    const got = await rows();
    expect(actions(got)).toEqual(['association', 'query']);
    expect(got[1]).toMatchObject({ outcome: 'success', principalName: 'WS01', details: expect.objectContaining({ via: 'dimse', level: 'STUDY', matches: 3, studies: 3, cancelled: false }) });
  });

  it('one C-GET: one retrieve row with the sub-operation counts', async () => {
    const rows = await s.mark();
    const out = path.join(s.dir, 'get');
    await fs.mkdir(out);
    const r = await run('getscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studies[0]}`, '-od', out, '127.0.0.1', String(tunnel.port)]);
    expect(r.code, r.stderr).toBe(0);
    const got = await rows();
    expect(actions(got)).toEqual(['association', 'retrieve']);
    expect(got[1]).toMatchObject({ outcome: 'success', studyUids: [studies[0]], details: expect.objectContaining({ via: 'dimse', operation: 'C-GET', matched: 1, completed: 1, failed: 0 }) });
  });

  it('no association row, no service: a C-FIND whose association cannot be recorded gets no answer, the association is aborted and the alert names why', async () => {
    // The row is written while the A-ASSOCIATE-AC goes out (issue 13), so its failure now
    // shows after the AC: every request but C-ECHO waits for it, and none is served.
    const audit = s.deps.audit;
    const original = audit.record;
    audit.record = async (e) => {
      if (e.action === 'association' && e.outcome === 'success') throw new Error('audit store unavailable');
      return original.call(audit, e);
    };
    try {
      const rows = await s.mark();
      const r = await run('findscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, s.caPath), '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '127.0.0.1', String(s.dimse.port)]);
      expect(r.stdout + r.stderr).not.toMatch(/Find Response: \d+ \(Pending\)/);
      expect(r.stdout + r.stderr).toMatch(/Abort/i);
      const got = await rows();
      expect(actions(got)).toEqual(['security-alert']);
      expect(got[0]).toMatchObject({ principalName: 'WS01', details: expect.objectContaining({ via: 'dimse', reason: 'local-abort', detail: 'audit-unavailable' }) });
    } finally {
      audit.record = original;
    }
    // Recorded again: served again.
    const rows = await s.mark();
    const ok = await run('findscu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, ...tlsArgs(ws, s.caPath), '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '127.0.0.1', String(s.dimse.port)]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(actions(await rows())).toEqual(['association', 'query']);
  });

  it('one C-MOVE: one retrieve row with the sub-operation counts', async () => {
    const rows = await s.mark();
    const r = await run('movescu', ['-v', '-S', '-aet', 'WS01', '-aec', AE, '-aem', 'DEST1', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studies[1]}`, '127.0.0.1', String(tunnel.port)]);
    expect(r.stdout + r.stderr, scp.output()).toMatch(/Received Final Move Response \(Success\)/);
    const got = await rows();
    expect(actions(got)).toEqual(['association', 'retrieve']);
    expect(got[1]).toMatchObject({ outcome: 'success', studyUids: [studies[1]], details: expect.objectContaining({ via: 'dimse', operation: 'C-MOVE', destination: 'DEST1', completed: 1, failed: 0 }) });
  });
});
