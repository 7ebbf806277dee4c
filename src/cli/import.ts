// tresor import PATH… — an existing archive (folders, a CD or USB stick's DICOMDIR, single
// files) into Tresor through its STOW-RS (import-stow.ts), as the logged-in user: the
// server authorizes, stores and audits each file exactly as for any other store.
//
// Bounded memory: the paths are walked lazily (import-walk.ts) and shared by --jobs
// workers; each result goes to the report file as it comes; only the problems are kept
// for the summary (at most PROBLEMS_SHOWN). Resumable: the server answers a file already
// stored with the same bytes as a success ("duplicate"), so a second run over the same
// folder stores only what is missing, without any local state.

import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import https from 'node:https';
import { Option, type Command } from 'commander';
import { openSession, withServerOptions, type ServerOptions } from './api-client.js';
import { classify, reloginOnce, sendFile, type FileResult, type Outcome } from './import-stow.js';
import { isDicomdirName, walk } from './import-walk.js';
import { EXIT, emit, table, usageError } from './output.js';
import { duration, startProgress, type ProgressState } from './progress.js';

const OUTCOMES: readonly Outcome[] = ['stored', 'duplicate', 'conflict', 'refused', 'skipped-not-dicom', 'unreadable'];
/** Outcomes that make the exit code 1: a DICOM file that did not end up in Tresor, or a file we could not read. */
const FAILED: ReadonlySet<Outcome> = new Set(['conflict', 'refused', 'unreadable']);
const PROBLEMS_SHOWN = 1000;

interface ImportOptions extends ServerOptions {
  department?: string;
  report?: string;
  jobs: number;
}

const parseJobs = (s: string): number => {
  const n = Number(s);
  if (!/^\d{1,2}$/.test(s) || n < 1 || n > 32) throw usageError(`--jobs ${s}: expected 1–32`);
  return n;
};

/** The report, one line per file: JSON lines, or CSV when the file name ends in .csv. */
class Report {
  private constructor(
    private readonly out: WriteStream,
    private readonly csv: boolean,
  ) {}

  static async open(file: string): Promise<Report> {
    const out = createWriteStream(file, { flags: 'w', mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', (e: NodeJS.ErrnoException) => reject(usageError(`--report ${file}: ${e.code ?? e.message}; give a file in a folder you may write to`)));
    });
    const csv = /\.csv$/i.test(file);
    if (csv) out.write('path,outcome,reason,bytes,sop_instance_uid\n');
    return new Report(out, csv);
  }

  private closed = false;

  async add(r: FileResult): Promise<void> {
    if (this.closed) return;
    const q = (v: unknown) => (v === undefined ? '' : /[",\r\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    const line = this.csv
      ? `${[r.path, r.outcome, r.reason, r.bytes, r.sopInstanceUid].map(q).join(',')}\n`
      : `${JSON.stringify({ path: r.path, outcome: r.outcome, ...(r.reason ? { reason: r.reason } : {}), bytes: r.bytes, ...(r.sopInstanceUid ? { sopInstanceUid: r.sopInstanceUid } : {}) })}\n`;
    if (!this.out.write(line)) await once(this.out, 'drain');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.out.end();
    await once(this.out, 'finish');
  }
}

export function importCommand(program: Command): void {
  withServerOptions(
    program
      .command('import')
      .description(
        'import files, folders (walked recursively) or a DICOMDIR (CD, USB stick) through STOW-RS as --user; ' +
          'non-DICOM files are skipped and counted; a second run stores only what is missing. ' +
          'Exit 0 when every DICOM file is stored or was already there, 1 when some were refused or unreadable (listed), 2 on a usage or connection error',
      )
      .argument('<paths...>', 'files, folders or DICOMDIR files')
      .option('--department <name>', 'department for new studies, when you write to several (default: your only one)')
      .option('--report <file>', 'write one line per file: JSON lines, or CSV when the name ends in .csv (path, outcome, reason, bytes, SOP Instance UID)')
      .addOption(new Option('--jobs <n>', 'files sent at the same time, 1–32').default(4).argParser(parseJobs)),
  )
    .usage('[options] PATH...')
    .action(async (paths: string[], opts: ImportOptions) => {
      const report = opts.report ? await Report.open(opts.report) : undefined;
      const session = await openSession(opts);
      const agent = new https.Agent({ keepAlive: true, maxSockets: opts.jobs });
      const ctx = { session, agent, department: opts.department, relogin: reloginOnce(session) };

      const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
      const problems: FileResult[] = [];
      const state: ProgressState = { files: 0, bytes: 0 };
      const started = Date.now();

      // The total, for the progress line's ETA: a second lazy walk that only counts.
      let counting = true;
      void (async () => {
        let files = 0;
        let bytes = 0;
        const { stat } = await import('node:fs/promises');
        for await (const f of walk(paths)) {
          if (!counting) return;
          files++;
          if (!f.unreadable) bytes += await stat(f.path).then((s) => s.size, () => 0);
        }
        state.totalFiles = files;
        state.totalBytes = bytes;
      })().catch(() => undefined);
      const progress = startProgress(state);

      const one = async (p: string, unreadable?: string): Promise<FileResult> => {
        if (unreadable !== undefined) return { path: p, outcome: 'unreadable', reason: unreadable, bytes: 0 };
        const c = await classify(p);
        if ('unreadable' in c) return { path: p, outcome: 'unreadable', reason: c.unreadable, bytes: 0 };
        if (c.skip !== undefined) return { path: p, outcome: 'skipped-not-dicom', reason: c.skip, bytes: c.size };
        if (isDicomdirName(p)) return { path: p, outcome: 'skipped-not-dicom', reason: 'a DICOMDIR (the index of the files beside it), not an instance', bytes: c.size };
        return sendFile(ctx, p, c.size);
      };

      const files = walk(paths);
      // Async generators queue concurrent next() calls, so the workers share one walk.
      let aborted = false;
      const worker = async () => {
        for (;;) {
          const n = await files.next();
          if (n.done || aborted) return;
          const r = await one(n.value.path, n.value.unreadable);
          counts[r.outcome]++;
          state.files++;
          state.bytes += r.bytes;
          if (FAILED.has(r.outcome) && problems.length < PROBLEMS_SHOWN) problems.push(r);
          await report?.add(r);
        }
      };
      try {
        // A connection lost for good (exit 2) stops every worker; the report keeps what was done.
        await Promise.all(Array.from({ length: opts.jobs }, () => worker().catch((e) => ((aborted = true), Promise.reject(e)))));
      } finally {
        aborted = true;
        counting = false;
        progress.stop();
        agent.destroy();
        await report?.close();
      }

      const seconds = (Date.now() - started) / 1000;
      const total = OUTCOMES.reduce((a, o) => a + counts[o], 0);
      const failed = [...FAILED].reduce((a, o) => a + counts[o], 0);
      const listed = problems.length < failed ? ` (first ${PROBLEMS_SHOWN} shown${opts.report ? `; all in ${opts.report}` : ''})` : '';
      emit(opts.json, { files: total, counts, bytes: state.bytes, seconds, report: opts.report ?? null, problems }, () => [
        `${total} files in ${duration(seconds)}: ${OUTCOMES.map((o) => `${counts[o]} ${o}`).join(', ')}`,
        ...(problems.length ? [`refused, in conflict or unreadable${listed}:`, ...table(['OUTCOME', 'PATH', 'REASON'], problems.map((p) => [p.outcome, p.path, p.reason ?? ''])).map((l) => `  ${l}`)] : []),
        ...(opts.report ? [`report: ${opts.report}`] : []),
      ]);
      if (failed > 0) process.exitCode = EXIT.refused;
    });
}
