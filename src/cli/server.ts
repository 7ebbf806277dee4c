// tresor serve | migrate | audit verify | edge — the commands that run next to the data.
// migrate and audit verify take the data directory's lock (lib/data-dir-lock.ts):
// the embedded database must not be opened by two processes.

import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config.js';
import { createLogger } from '../log.js';
import { emit } from './output.js';
import { configFrom, withSettings } from './settings.js';
import { withDataDirLock } from './offline.js';

const openDatabase = async (cfg: Readonly<Config>) => {
  const { openDb } = await import('../db/knex.js');
  return openDb({ url: cfg.databaseUrl, embeddedDir: cfg.databaseUrl ? undefined : path.join(cfg.dataDir, 'pgdata') });
};

export function serverCommands(program: Command): void {
  withSettings(program.command('serve').description('run the HTTPS and DICOM TLS listeners (takes the data directory lock)')).action(async (opts) => {
    const cfg = configFrom(opts);
    const logger = createLogger(cfg.logLevel);
    const { startServer } = await import('../main.js');
    // Handlers before the "listening" line: a supervisor that sends SIGTERM as soon as it
    // reads it must get a graceful stop (lock released), not the default signal death.
    const running: { server?: Awaited<ReturnType<typeof startServer>> } = {};
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => process.exit(1), 15_000);
      force.unref();
      let code = 0;
      try {
        await running.server?.close();
        logger.info('stopped');
      } catch {
        code = 1;
      } finally {
        process.exit(code);
      }
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    running.server = await startServer(cfg, logger);
    if (stopping) await running.server.close().catch(() => undefined);
  });

  withSettings(program.command('migrate').description('apply pending database migrations (offline: takes the data directory lock)'))
    .option('--json', 'print JSON for programs instead of text', false)
    .action(async (opts) => {
      const cfg = configFrom(opts);
      await withDataDirLock(cfg, 'migrate', async () => {
        const { migrate } = await import('../db/knex.js');
        const db = await openDatabase(cfg);
        try {
          const applied = await migrate(db);
          emit(opts.json, { applied }, () => (applied.length ? `applied: ${applied.join(', ')}` : 'up to date'));
        } finally {
          await db.destroy();
        }
      });
    });

  const audit = program.command('audit').description('audit trail tools');
  withSettings(
    audit
      .command('verify')
      .description(
        'check the audit trail: hash chain, each row\'s MAC (audit key) and the signed checkpoints in <data-dir>/audit-checkpoints.jsonl; ' +
          'names the check that failed (offline: takes the data directory lock; exit 1 when broken)',
      ),
  )
    .option('--json', 'print JSON for programs instead of text', false)
    .action(async (opts) => {
      const cfg = configFrom(opts);
      await withDataDirLock(cfg, 'audit verify', async () => {
        const { createAuditRepo } = await import('../db/audit.repo.js');
        const { createAuditLog } = await import('../core/audit.js');
        const { auditKeyFor } = await import('../pki/audit-key.js');
        const { auditCheckpointFile } = await import('../storage/audit-checkpoint-file.js');
        const key = await auditKeyFor(cfg, { create: false });
        const db = await openDatabase(cfg);
        try {
          const r = await createAuditLog(createAuditRepo(db), undefined, { key, checkpoints: auditCheckpointFile(cfg.dataDir), checkpointEveryMs: 0 }).verify();
          emit(opts.json, r, () => [
            r.ok ? `audit trail intact: ${r.count} events` : `audit trail BROKEN (${r.reason}) at ${r.reason === 'checkpoint-mac-invalid' ? 'checkpoint line' : 'event id'} ${r.brokenAt}: ${r.message}; ${r.count} events before it verify`,
            r.legacy ? `${r.legacy} events written before MACs were introduced are legacy: verified by the hash chain only` : '',
            r.macChecked ? '' : 'no audit key found (TRESOR_MASTER_KEY_FILE or <data-dir>/keys/audit.key): MACs and checkpoints were NOT checked',
            r.lastCheckpoint ? `${r.checkpoints} checkpoints; the last names event ${r.lastCheckpoint.seq} (${r.lastCheckpoint.count} events) at ${r.lastCheckpoint.at}` : 'no checkpoint yet: deleting the newest events could not be detected',
          ].filter(Boolean));
          if (!r.ok) process.exitCode = 1;
        } finally {
          await db.destroy();
        }
      });
    });

  program
    .command('edge')
    .description('run the DICOM TLS gateway for devices without TLS (see README: tresor edge)')
    .requiredOption('--config <file>', 'edge.json, e.g. from `tresor device bundle AE --edge`')
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (opts: { config: string; logLevel: string }) => {
      const { runEdge } = await import('../edge/run.js');
      await runEdge(opts.config, opts.logLevel);
    });
}

