// C-ECHO and C-STORE through real dcmtk clients over TLS with device certificates
// issued by Tresor's CA (what POST /admin/devices/{ae}/certificate returns).

import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AE, auditOf, startDimseEnv, type DeviceCreds, type DimseEnv } from '../helpers/dimse-env.js';
import { datasetDump, run, tlsArgs } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const CT = path.join(SAMPLE_DIR, 'CT_small.dcm');
const MR = path.join(SAMPLE_DIR, 'MR_small.dcm');

describe('C-ECHO and C-STORE over TLS', () => {
  let env: DimseEnv;
  let modality: DeviceCreds;
  let reader: DeviceCreds;

  beforeAll(async () => {
    env = await startDimseEnv();
    modality = await env.device('CT01', [['radiology', 'writer']]);
    reader = await env.device('WS01', [['radiology', 'reader']]);
  });
  afterAll(async () => env?.close());

  it('answers echoscu with a device certificate', async () => {
    const r = await run('echoscu', ['-aet', 'CT01', '-aec', AE, ...tlsArgs(modality, env.caPath), '127.0.0.1', String(env.port)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = await auditOf(env, 'association');
    expect(rows.at(-1)).toMatchObject({ outcome: 'success', principalName: 'CT01', details: expect.objectContaining({ via: 'dimse', authentication: 'certificate', callingAe: 'CT01' }) });
  });

  it('stores with storescu and the object is in the archive byte for byte', async () => {
    const r = await run('storescu', ['-aet', 'CT01', '-aec', AE, ...tlsArgs(modality, env.caPath), '127.0.0.1', String(env.port), CT, MR]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const list = await env.retrieve.list({ kind: 'system', id: 0, name: 'test', globalAdmin: true, roles: [] }, { level: 'STUDY', studyUids: ['1.3.6.1.4.1.5962.1.2.1.20040119072730.12322'] });
    expect(list.length).toBe(1);
    const stored = Buffer.concat(await (await env.retrieve.open(list[0])).toArray());
    const file = path.join(env.dir, 'stored.dcm');
    await fs.writeFile(file, stored);
    // Same attributes and pixel data as the file storescu read (storescu drops the trailing padding).
    expect(await datasetDump(file)).toBe(await datasetDump(CT));
    expect(stored.toString('latin1', 128, 132)).toBe('DICM');
    const tmp = await fs.readdir(path.join(env.dir, 'tmp'));
    expect(tmp.filter((f) => f.startsWith('dimse-'))).toEqual([]);
  });

  it('refuses C-STORE from a reader device with 0x0124', async () => {
    const r = await run('storescu', ['-v', '-aet', 'WS01', '-aec', AE, ...tlsArgs(reader, env.caPath), '127.0.0.1', String(env.port), CT]);
    expect(r.stdout + r.stderr).toMatch(/Received Store Response \(Unknown Status: 0x124\)/);
    const stores = await auditOf(env, 'store');
    expect(stores.some((e) => e.principalName === 'WS01' && e.outcome !== 'success')).toBe(true);
  });
});
