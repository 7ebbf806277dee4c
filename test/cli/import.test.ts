// Issue 10 §2: `tresor import` (the CLI as a child process, from src through tsx) against a
// real Tresor HTTPS server (helpers/dicomweb.ts: createDeps + buildApp) on a real database:
// the whole pydicom sample folder with every file accounted for, a DICOMDIR made by
// dcmtk's dcmmkdir, unreadable and non-DICOM files, a second run, departments, exit codes.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Db } from '../../src/db/knex.js';
import { databasesUnderTest } from '../helpers/db.js';
import { startDicomwebServer, USER_PASSWORD, type DicomwebServer } from '../helpers/dicomweb.js';
import { reissue } from '../helpers/dicomweb-data.js';
import { sharedTestPki } from '../helpers/pki.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const ROOT = path.resolve(__dirname, '../..');
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
interface Line {
  path: string;
  outcome: string;
  reason?: string;
  bytes: number;
  sopInstanceUid?: string;
}

let work: string;
let caFile: string;
let passwordFile: string;

function tresor(server: DicomwebServer, user: string, args: string[], url = server.url): Promise<Run> {
  const env = { ...process.env, TRESOR_URL: url, TRESOR_CA: caFile, TRESOR_USER: user, TRESOR_PASSWORD_FILE: passwordFile };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'cli.ts'), ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 170_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

const readReport = (file: string): Line[] =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

/** Every file under `dir` (symbolic links included), computed without the CLI's walker. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((d) => !d.isDirectory())
    .map((d) => path.join((d as any).parentPath ?? (d as any).path, d.name))
    .sort();
}

const hasDicmPrefix = (file: string): boolean => {
  const b = fs.readFileSync(file);
  return b.length >= 132 && b.toString('latin1', 128, 132) === 'DICM';
};

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('tresor import', () => {
  let server: DicomwebServer;
  let db: Db;
  let closeDb: () => Promise<void>;
  let radiology: number;
  let cardiology: number;

  beforeAll(async () => {
    const t = await databasesUnderTest()[0].open();
    db = t.db;
    closeDb = t.close;
    const { pki } = await sharedTestPki();
    server = await startDicomwebServer({ db, pki });
    radiology = await server.department('radiology');
    cardiology = await server.department('cardiology');
    await server.user('importer', [{ department: 'radiology', role: 'writer' }]);
    await server.user('twodept', [
      { department: 'radiology', role: 'writer' },
      { department: 'cardiology', role: 'writer' },
    ]);
    await server.user('looker', [{ department: 'radiology', role: 'reader' }]);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-import-'));
    caFile = path.join(work, 'ca.crt');
    fs.writeFileSync(caFile, server.ca);
    passwordFile = path.join(work, 'password');
    fs.writeFileSync(passwordFile, `${USER_PASSWORD}\n`, { mode: 0o600 });
  });

  afterAll(async () => {
    await server?.close();
    await closeDb?.();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const instanceCount = async () => Number((await db('instances').count({ n: '*' }))[0].n);

  it('accounts for every file of the pydicom sample folder with its reason, and a second run stores nothing new', async () => {
    const expected = filesUnder(SAMPLE_DIR);
    const report = path.join(work, 'pydicom.jsonl');
    const r = await tresor(server, 'importer', ['import', SAMPLE_DIR, '--report', report, '--jobs', '3']);
    // Some sample files are refused (broken on purpose, or the same SOP Instance UID with other bytes).
    expect(r.code, r.stderr).toBe(1);
    const lines = readReport(report);
    // Every file exactly once, nothing else.
    expect(lines.map((l) => l.path).sort()).toEqual(expected);

    for (const l of lines) {
      const name = path.basename(l.path);
      if (!hasDicmPrefix(l.path)) {
        expect(l, name).toMatchObject({ outcome: 'skipped-not-dicom', reason: expect.stringContaining('no DICM prefix') });
      } else if (name === 'DICOMDIR') {
        expect(l, name).toMatchObject({ outcome: 'skipped-not-dicom', reason: expect.stringContaining('DICOMDIR') });
      } else {
        expect(['stored', 'duplicate', 'conflict', 'refused'], name).toContain(l.outcome);
        if (l.outcome !== 'stored' && l.outcome !== 'duplicate') expect(l.reason, name).toMatch(/^[0-9A-F]{4}: /);
      }
    }
    const byName = new Map(lines.map((l) => [path.relative(SAMPLE_DIR, l.path), l]));
    // Files known to be broken (samples.ts), with the Failure Reason they must get.
    expect(byName.get('MR_truncated.dcm')).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^C000/) });
    expect(byName.get('meta_missing_tsyntax.dcm')).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^C000/) });
    expect(byName.get('priv_SQ.dcm')).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^A900/) });
    expect(byName.get('no_meta.dcm')).toMatchObject({ outcome: 'skipped-not-dicom' });
    expect(byName.get('CT_small.dcm')).toMatchObject({ outcome: expect.stringMatching(/^(stored|duplicate)$/) });

    // Stored means stored: each such file's SOP Instance UID has a row whose bytes are the file's.
    const stored = lines.filter((l) => l.outcome === 'stored');
    expect(stored.length).toBeGreaterThan(50);
    const rows = await db('instances').select('sop_instance_uid', 'sha256', 'size');
    const bySop = new Map(rows.map((x: any) => [x.sop_instance_uid, x]));
    expect(rows.length).toBe(stored.length);
    for (const l of stored) {
      const row: any = bySop.get(l.sopInstanceUid!);
      expect(row, l.path).toBeDefined();
      expect(Number(row.size)).toBe(fs.statSync(l.path).size);
    }
    // A conflict names a SOP Instance UID that is stored with other bytes.
    for (const l of lines.filter((x) => x.outcome === 'conflict')) {
      const row: any = bySop.get(l.sopInstanceUid!);
      expect(row, l.path).toBeDefined();
      expect(row.sha256).not.toBe(createHash('sha256').update(fs.readFileSync(l.path)).digest('hex'));
    }
    // The human summary counts them all and lists the refused files.
    expect(r.stdout).toContain(`${expected.length} files`);
    expect(r.stdout).toContain('MR_truncated.dcm');

    // Second run: nothing new, every stored file is "duplicate" now, the same failures.
    const before = await instanceCount();
    const report2 = path.join(work, 'pydicom-2.csv');
    const r2 = await tresor(server, 'importer', ['import', SAMPLE_DIR, '--report', report2, '--json']);
    expect(r2.code).toBe(1);
    const summary = JSON.parse(r2.stdout);
    expect(summary.counts.stored).toBe(0);
    expect(summary.counts.duplicate).toBe(stored.length + lines.filter((l) => l.outcome === 'duplicate').length);
    expect(summary.files).toBe(expected.length);
    expect(await instanceCount()).toBe(before);
    const csv = fs.readFileSync(report2, 'utf8').trim().split('\n');
    expect(csv[0]).toBe('path,outcome,reason,bytes,sop_instance_uid');
    expect(csv.length).toBe(expected.length + 1);
  });

  it('imports what a DICOMDIR references (dcmmkdir), and only that', async () => {
    const media = path.join(work, 'cd');
    fs.mkdirSync(path.join(media, 'DIR1'), { recursive: true });
    const a = reissue('CT_small.dcm');
    const b = reissue('MR_small.dcm');
    fs.writeFileSync(path.join(media, 'DIR1', 'IMG1'), a.bytes);
    fs.writeFileSync(path.join(media, 'DIR1', 'IMG2'), b.bytes);
    execFileSync('dcmmkdir', ['--recurse', '+I', 'DIR1'], { cwd: media, stdio: 'ignore' });
    // Beside the medium's files but not in its index: not imported.
    fs.writeFileSync(path.join(media, 'DIR1', 'EXTRA'), reissue('CT_small.dcm').bytes);

    const report = path.join(work, 'cd.jsonl');
    const r = await tresor(server, 'importer', ['import', path.join(media, 'DICOMDIR'), '--report', report]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const lines = readReport(report);
    expect(lines.map((l) => path.relative(media, l.path)).sort()).toEqual(['DIR1/IMG1', 'DIR1/IMG2']);
    expect(lines.map((l) => l.outcome)).toEqual(['stored', 'stored']);
    expect(lines.map((l) => l.sopInstanceUid).sort()).toEqual([a.sop, b.sop].sort());
  });

  it('reports unreadable and non-DICOM files without sending them, and exits 1', async () => {
    const dir = path.join(work, 'mixed');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    const good = reissue('CT_small.dcm');
    fs.writeFileSync(path.join(dir, 'good.dcm'), good.bytes);
    const cut = reissue('CT_small.dcm');
    fs.writeFileSync(path.join(dir, 'sub', 'truncated.dcm'), cut.bytes.subarray(0, 1500));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an image\n');
    fs.writeFileSync(path.join(dir, 'empty.dcm'), '');
    fs.symlinkSync(path.join(dir, 'gone.dcm'), path.join(dir, 'dangling.dcm'));
    fs.symlinkSync(path.join(dir, 'sub'), path.join(dir, 'loop'));
    execFileSync('mkfifo', [path.join(dir, 'pipe.dcm')]);

    const report = path.join(work, 'mixed.jsonl');
    const r = await tresor(server, 'importer', ['import', dir, '--report', report, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const got = Object.fromEntries(readReport(report).map((l) => [path.relative(dir, l.path), l]));
    expect(Object.keys(got).sort()).toEqual(['dangling.dcm', 'empty.dcm', 'good.dcm', 'loop', 'notes.txt', 'pipe.dcm', 'sub/truncated.dcm']);
    expect(got['good.dcm']).toMatchObject({ outcome: 'stored', sopInstanceUid: good.sop });
    expect(got['sub/truncated.dcm']).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^C000/) });
    expect(got['notes.txt'].outcome).toBe('skipped-not-dicom');
    expect(got['empty.dcm'].outcome).toBe('skipped-not-dicom');
    expect(got['dangling.dcm']).toMatchObject({ outcome: 'unreadable', reason: expect.stringContaining('ENOENT') });
    expect(got['loop']).toMatchObject({ outcome: 'unreadable', reason: expect.stringContaining('not followed') });
    expect(got['pipe.dcm']).toMatchObject({ outcome: 'unreadable', reason: 'not a regular file' });
    // Nothing of the truncated file was stored.
    expect(await db('instances').where({ sop_instance_uid: cut.sop }).first()).toBeUndefined();
    const summary = JSON.parse(r.stdout);
    expect(summary.counts).toEqual({ stored: 1, duplicate: 0, conflict: 0, refused: 1, 'skipped-not-dicom': 2, unreadable: 3 });
  });

  it('puts new studies in --department; without it a writer in two departments is refused per file', async () => {
    const dir = path.join(work, 'dept');
    fs.mkdirSync(dir);
    const x = reissue('CT_small.dcm');
    fs.writeFileSync(path.join(dir, 'x.dcm'), x.bytes);

    const without = await tresor(server, 'twodept', ['import', dir, '--json']);
    expect(without.code).toBe(1);
    expect(JSON.parse(without.stdout).problems[0]).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^0124/) });

    const unknown = await tresor(server, 'twodept', ['import', dir, '--department', 'nowhere']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--department nowhere');

    const ok = await tresor(server, 'twodept', ['import', dir, '--department', 'cardiology']);
    expect(ok.code, ok.stderr).toBe(0);
    const study = await db('studies').where({ study_uid: x.study }).first();
    expect(Number(study.department_id)).toBe(cardiology);
    expect(cardiology).not.toBe(radiology);
  });

  it('refuses a reader (exit 1, 0124 for each file) and ends in exit 2 on usage and connection errors', async () => {
    const dir = path.join(work, 'reader');
    fs.mkdirSync(dir);
    const y = reissue('CT_small.dcm');
    fs.writeFileSync(path.join(dir, 'y.dcm'), y.bytes);
    const reader = await tresor(server, 'looker', ['import', dir]);
    expect(reader.code).toBe(1);
    expect(reader.stdout).toMatch(/refused\s+\S+y\.dcm\s+0124/);
    expect(await db('instances').where({ sop_instance_uid: y.sop }).first()).toBeUndefined();

    const badJobs = await tresor(server, 'importer', ['import', dir, '--jobs', '0']);
    expect(badJobs.code).toBe(2);
    expect(badJobs.stderr).toContain('--jobs');

    const nobody = await tresor(server, 'importer', ['import', dir], `https://127.0.0.1:${await freePort()}`);
    expect(nobody.code).toBe(2);
    expect(nobody.stderr).toContain('cannot reach');

    const noPaths = await tresor(server, 'importer', ['import']);
    expect(noPaths.code).toBe(2);
  });
});
