// Issue 14 item 3: the audit trail against an attacker who can write the database but
// does not hold the audit key. Every attack is done as that attacker would: plain SQL on
// audit_events (the append-only trigger disabled first, as a database owner can), with
// hashes recomputed by the public algorithm (hashRow), never with the key. verify() must
// name the check that fails. On PGlite, and on PostgreSQL with TEST_DATABASE_URL.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, hashRow, type AuditLog, type AuditRow } from '../../src/core/audit.js';
import { createAuditRepo } from '../../src/db/audit.repo.js';
import type { Db } from '../../src/db/knex.js';
import { auditKeyFrom, dataDirAuditKey } from '../../src/pki/audit-key.js';
import { auditCheckpointFile } from '../../src/storage/audit-checkpoint-file.js';
import { databasesUnderTest } from '../helpers/db.js';

const principal = { kind: 'user', id: 7, name: 'alice' } as const;

describe.each(databasesUnderTest())('audit tamper evidence on $name', (dbu) => {
  let t: { db: Db; close(): Promise<void> };
  let dir: string;
  let log: AuditLog;
  const key = auditKeyFrom(randomBytes(32));
  const open = (k = key) => createAuditLog(createAuditRepo(t.db), undefined, { key: k, checkpoints: auditCheckpointFile(dir), checkpointEveryRows: 5, checkpointEveryMs: 0 });

  const rows = async (): Promise<any[]> => t.db('audit_events').orderBy('id');
  const asAttacker = async (fn: () => Promise<void>) => {
    await t.db.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change');
    try {
      await fn();
    } finally {
      await t.db.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change');
    }
  };
  const asRow = (r: any): AuditRow => ({
    id: Number(r.id), at: new Date(r.at).toISOString(), principalKind: r.principal_kind, principalId: r.principal_id === null ? null : Number(r.principal_id),
    principalName: r.principal_name, source: r.source, action: r.action, outcome: r.outcome, studyUids: r.study_uids ?? [], details: r.details ?? {},
    prevHash: r.prev_hash, hash: r.hash, mac: r.mac,
  });
  /** What an attacker without the key can do: rewrite prev_hash and hash of every row from `fromId` on. */
  const rechainFrom = async (fromId: number, prevHash: string) => {
    let prev = prevHash;
    for (const r of (await rows()).filter((x) => Number(x.id) >= fromId)) {
      const row = { ...asRow(r), prevHash: prev };
      const hash = hashRow(row);
      await t.db('audit_events').where({ id: r.id }).update({ prev_hash: prev, hash });
      prev = hash;
    }
  };

  beforeEach(async () => {
    t = await dbu.open();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-audit-'));
    log = open();
    for (let i = 0; i < 12; i++) await log.record({ action: 'query', outcome: 'success', principal, details: { via: 'dicomweb', n: i } });
    await log.close(); // the shutdown checkpoint: 12 rows
  });
  afterEach(async () => {
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('an untouched trail verifies, with every row MAC-checked and its checkpoints met', async () => {
    const r = await open().verify();
    expect(r).toMatchObject({ ok: true, count: 12, legacy: 0, macChecked: true });
    expect(r.checkpoints).toBeGreaterThanOrEqual(2); // after 5 and 10 rows, and at close
    expect(r.lastCheckpoint).toMatchObject({ count: 12 });
    const lines = (await fs.readFile(path.join(dir, 'audit-checkpoints.jsonl'), 'utf8')).trim().split('\n');
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ seq: (await rows()).at(-1).id, count: 12 });
    expect((await fs.stat(path.join(dir, 'audit-checkpoints.jsonl'))).mode & 0o777).toBe(0o600);
  });

  it('deleting the newest rows is named as truncation', async () => {
    const all = await rows();
    await asAttacker(async () => void (await t.db('audit_events').where('id', '>', all[8].id).delete()));
    const r = await open().verify();
    expect(r).toMatchObject({ ok: false, reason: 'truncated', brokenAt: Number(all[11].id) });
    if (!r.ok) expect(r.message).toMatch(/rows missing after the last checkpoint/);
  });

  it('deleting a middle row and re-chaining the rest with plain SQL is named as a MAC mismatch at the first re-chained row', async () => {
    const all = await rows();
    await asAttacker(async () => {
      await t.db('audit_events').where({ id: all[6].id }).delete();
      await rechainFrom(Number(all[7].id), all[5].hash);
    });
    const r = await open().verify();
    expect(r).toMatchObject({ ok: false, reason: 'mac-mismatch', brokenAt: Number(all[7].id) });
    // Without the MACs (as before issue 14) the re-chained trail would pass: the chain itself is consistent.
    const chainOnly = await createAuditLog(createAuditRepo(t.db)).verify();
    expect(chainOnly.ok).toBe(true);
  });

  it("editing a row's detail is named at that row; re-hashing it too is a MAC mismatch there", async () => {
    const all = await rows();
    const victim = all[3];
    await asAttacker(async () => void (await t.db('audit_events').where({ id: victim.id }).update({ details: JSON.stringify({ ...victim.details, n: 99 }) })));
    expect(await open().verify()).toMatchObject({ ok: false, reason: 'row-hash-mismatch', brokenAt: Number(victim.id) });
    await asAttacker(() => rechainFrom(Number(victim.id), victim.prev_hash));
    expect(await open().verify()).toMatchObject({ ok: false, reason: 'mac-mismatch', brokenAt: Number(victim.id) });
  });

  it('a forged row with a made-up MAC is refused', async () => {
    const all = await rows();
    const last = all.at(-1);
    const forged = { ...asRow(last), id: Number(last.id) + 1, prevHash: last.hash, action: 'delete', details: { via: 'admin' } };
    const hash = hashRow(forged);
    await t.db('audit_events').insert({
      at: forged.at, principal_kind: forged.principalKind, principal_id: forged.principalId, principal_name: forged.principalName, source: forged.source,
      action: forged.action, outcome: forged.outcome, study_uids: forged.studyUids, details: JSON.stringify(forged.details), prev_hash: forged.prevHash, hash,
      mac: auditKeyFrom(randomBytes(32)).mac('row', hash),
    });
    expect(await open().verify()).toMatchObject({ ok: false, reason: 'mac-mismatch' });
  });

  it('an edited checkpoint file is named (checkpoint MAC invalid)', async () => {
    const file = path.join(dir, 'audit-checkpoints.jsonl');
    const lines = (await fs.readFile(file, 'utf8')).trim().split('\n');
    const last = JSON.parse(lines.at(-1)!);
    lines[lines.length - 1] = JSON.stringify({ ...last, count: last.count - 3 });
    await fs.writeFile(file, `${lines.join('\n')}\n`);
    expect(await open().verify()).toMatchObject({ ok: false, reason: 'checkpoint-mac-invalid', brokenAt: lines.length });
  });

  it('moving the legacy boundary to pass MAC-less rows off as legacy is named', async () => {
    await t.db('audit_meta').update({ legacy_through: 1_000_000 });
    expect(await open().verify()).toMatchObject({ ok: false, reason: 'legacy-boundary-moved' });
  });

  it('rows written before the migration are reported as legacy, verified by the chain only', async () => {
    const t2 = await dbu.open();
    try {
      const keyless = createAuditLog(createAuditRepo(t2.db));
      for (let i = 0; i < 3; i++) await keyless.record({ action: 'login', outcome: 'success', principal });
      // What migration 005 does on an existing installation: rows so far are legacy.
      await t2.db('audit_meta').update({ legacy_through: (await t2.db('audit_events').max({ m: 'id' }).first())!.m });
      const dir2 = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-audit-'));
      const keyed = createAuditLog(createAuditRepo(t2.db), undefined, { key, checkpoints: auditCheckpointFile(dir2), checkpointEveryMs: 0 });
      for (let i = 0; i < 2; i++) await keyed.record({ action: 'login', outcome: 'success', principal });
      await keyed.close();
      expect(await keyed.verify()).toMatchObject({ ok: true, count: 5, legacy: 3, macChecked: true, checkpoints: 1 });
      await fs.rm(dir2, { recursive: true, force: true });
    } finally {
      await t2.close();
    }
  });

  it('a checkpoint is not signed over rows that do not verify since the previous one', async () => {
    const errors: unknown[] = [];
    const l = createAuditLog(createAuditRepo(t.db), undefined, { key, checkpoints: auditCheckpointFile(dir), checkpointEveryMs: 0, onCheckpointError: (e) => errors.push(e) });
    await l.record({ action: 'login', outcome: 'success', principal });
    const after = (await rows()).at(-1); // written after the last checkpoint
    await asAttacker(async () => void (await t.db('audit_events').where({ id: after.id }).update({ details: JSON.stringify({ n: -1 }) })));
    await l.record({ action: 'login', outcome: 'success', principal });
    expect(await l.checkpoint()).toBeNull();
    expect(String(errors[0])).toMatch(/does not verify since the last checkpoint/);
  });
});

describe('the data directory audit key', () => {
  it('is created once, 0600, and refused when others can read it', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tresor-audit-key-'));
    try {
      expect(await dataDirAuditKey(dir, { create: false })).toBeUndefined();
      const a = await dataDirAuditKey(dir, { create: true });
      const b = await dataDirAuditKey(dir, { create: true });
      expect(a!.mac('row', 'x')).toBe(b!.mac('row', 'x'));
      const file = path.join(dir, 'keys', 'audit.key');
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      await fs.chmod(file, 0o644);
      await expect(dataDirAuditKey(dir, { create: true })).rejects.toThrow(/chmod 600/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
