// ARCHITECTURE.md rule 8 through the DICOMweb door: each request is audited exactly
// once, by the core, with the shared vocabulary and `via: 'dicomweb'` — one `store`
// row per STOW-RS request (however many instances), one `query` row per QIDO-RS
// request, one `retrieve` row per WADO-RS request; GET /admin/audit shows the one
// query with its DICOM audit event (PS3.15 A.5.3.12, 110112).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipart } from '../helpers/dicomweb.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { startAuditServer, type AuditServer } from '../helpers/audit-server.js';

describe('DICOMweb: audit rows per request', () => {
  let s: AuditServer;
  let token: string;
  let rootToken: string;
  const study = reissue().study;
  const instances = [reissue('CT_small.dcm', { study }), reissue('CT_small.dcm', { study }), reissue('CT_small.dcm', { study })];

  beforeAll(async () => {
    s = await startAuditServer();
    await s.user('alice', 'correct horse battery 7', [['radiology', 'writer'], ['radiology', 'reader']]);
    await s.user('root', 'tr0ub4dor and 3 more words', [], true);
    const login = async (username: string, password: string) => {
      const r = await s.http.inject({ method: 'POST', url: '/auth/token', payload: { username, password } });
      expect(r.statusCode, r.body).toBe(200);
      return r.json().access_token as string;
    };
    token = await login('alice', 'correct horse battery 7');
    rootToken = await login('root', 'tr0ub4dor and 3 more words');
  });
  afterAll(async () => s?.close());

  it('one STOW-RS of 3 instances: one store row', async () => {
    const rows = await s.mark();
    const m = multipart(instances.map((i) => ({ body: i.bytes })));
    const r = await s.http.inject({ method: 'POST', url: '/dicomweb/studies', payload: m.body, headers: { authorization: `Bearer ${token}`, 'content-type': m.contentType, accept: 'application/dicom+json' } });
    expect(r.statusCode, r.body).toBe(200);
    const got = await rows();
    expect(got.map((e) => e.action)).toEqual(['store']);
    expect(got[0]).toMatchObject({ outcome: 'success', principalName: 'alice', studyUids: [study], details: expect.objectContaining({ via: 'dicomweb', instances: 3, stored: 3, failed: 0 }) });
  });

  it('one QIDO-RS: one query row, and GET /admin/audit shows exactly one query event', async () => {
    const rows = await s.mark();
    const r = await s.http.inject({ method: 'GET', url: '/dicomweb/studies', headers: { authorization: `Bearer ${token}`, accept: 'application/dicom+json' } });
    expect(r.statusCode, r.body).toBe(200);
    const got = await rows();
    expect(got.map((e) => e.action)).toEqual(['query']);
    expect(got[0]).toMatchObject({ outcome: 'success', details: expect.objectContaining({ via: 'dicomweb', level: 'STUDY', matches: 1 }) });
    const since = got[0].id - 1;
    const a = await s.http.inject({ method: 'GET', url: '/admin/audit?action=query&limit=1000', headers: { authorization: `Bearer ${rootToken}` } });
    expect(a.statusCode, a.body).toBe(200);
    const queries = a.json().events.filter((e: { id: number }) => e.id > since);
    expect(queries).toHaveLength(1);
    expect(queries[0]).toMatchObject({ action: 'query', dicomEvent: { code: '110112', meaning: 'Query' }, details: expect.objectContaining({ via: 'dicomweb' }) });
  });

  it('one WADO-RS study retrieve: one retrieve row with the instance count', async () => {
    const rows = await s.mark();
    const r = await s.http.inject({ method: 'GET', url: `/dicomweb/studies/${study}`, headers: { authorization: `Bearer ${token}`, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    expect(r.statusCode, r.body.slice(0, 200)).toBe(200);
    const got = await rows();
    expect(got.map((e) => e.action)).toEqual(['retrieve']);
    expect(got[0]).toMatchObject({ outcome: 'success', studyUids: [study], details: expect.objectContaining({ via: 'dicomweb', resource: 'instances', instances: 3, matched: 3 }) });
  });
});
