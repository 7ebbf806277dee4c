// Issue 10, item 5: DELETE is accepted with or without a JSON content type (curl -X DELETE
// with -H 'content-type: application/json' and no body, as scripts and the README write it).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServed, type Served } from '../helpers/served.js';

describe('DELETE with or without content-type: application/json', () => {
  let s: Served;
  let admin: string;
  beforeAll(async () => {
    s = await startServed();
    admin = await s.token('admin', 'Correct-Horse-Battery-9');
    await s.department('gone-a');
    await s.department('gone-b');
  }, 120_000);
  afterAll(async () => s?.close());

  it('without a content type', async () => {
    const r = await s.curl(['-X', 'DELETE', '-H', `Authorization: Bearer ${admin}`, `${s.base}/admin/departments/gone-a`]);
    expect(r.status, r.body).toBe(204);
  });

  it('with content-type: application/json and no body', async () => {
    const r = await s.curl(['-X', 'DELETE', '-H', `Authorization: Bearer ${admin}`, '-H', 'Content-Type: application/json', `${s.base}/admin/departments/gone-b`]);
    expect(r.status, r.body).toBe(204);
  });

  it('with content-type: application/json and an empty JSON object', async () => {
    await s.department('gone-c');
    const r = await s.curl(['-X', 'DELETE', '-H', `Authorization: Bearer ${admin}`, '-H', 'Content-Type: application/json', '-d', '{}', `${s.base}/admin/departments/gone-c`]);
    expect(r.status, r.body).toBe(204);
  });

  it('DICOMweb DELETE of an unknown study answers 404 either way (not 400/415)', async () => {
    for (const extra of [[], ['-H', 'Content-Type: application/json']]) {
      const r = await s.curl(['-X', 'DELETE', '-H', `Authorization: Bearer ${admin}`, ...extra, `${s.base}/dicomweb/studies/1.2.3.4`]);
      expect(r.status, r.body).toBe(404);
    }
  });
});
