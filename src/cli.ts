#!/usr/bin/env node
// The `tresor` command: serve, migrate, audit verify.

import { Command } from 'commander';
import { ConfigError, loadConfig, SETTINGS, type RawSettings, type SettingName } from './config.js';
import { createLogger } from './log.js';

const program = new Command('tresor').description('Tresor: a hardened, minimal PACS').showHelpAfterError();

/** Every setting as a flag; the environment variable of the same setting is the fallback. */
function withSettings(cmd: Command): Command {
  // Commander names each option by camel-casing its flag, which is exactly the
  // setting's name in config.ts (--dimse-port → dimsePort).
  for (const s of Object.values(SETTINGS)) cmd.option(`--${s.flag} <value>`, `(env ${s.env})`);
  return cmd;
}

function config(opts: Record<string, string | undefined>) {
  const flags: RawSettings = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) if (opts[name] !== undefined) flags[name] = opts[name];
  try {
    return loadConfig(flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

withSettings(program.command('serve').description('run the HTTPS and DICOM TLS listeners')).action(async (opts) => {
  const cfg = config(opts);
  const logger = createLogger(cfg.logLevel);
  const { startServer } = await import('./main.js');
  const server = await startServer(cfg, logger);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    let code = 0;
    try {
      await server.close();
      logger.info('stopped');
    } catch {
      code = 1;
    } finally {
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
});

withSettings(program.command('migrate').description('apply pending database migrations')).action(async (opts) => {
  const cfg = config(opts);
  const path = await import('node:path');
  const { openDb, migrate } = await import('./db/knex.js');
  const db = await openDb({ url: cfg.databaseUrl, embeddedDir: cfg.databaseUrl ? undefined : path.join(cfg.dataDir, 'pgdata') });
  try {
    const applied = await migrate(db);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
  } finally {
    await db.destroy();
  }
});

const audit = program.command('audit').description('audit trail tools');
withSettings(audit.command('verify').description('check the hash chain of the audit trail')).action(async (opts) => {
  const cfg = config(opts);
  const path = await import('node:path');
  const { openDb } = await import('./db/knex.js');
  const { createAuditRepo } = await import('./db/audit.repo.js');
  const { createAuditLog } = await import('./core/audit.js');
  const db = await openDb({ url: cfg.databaseUrl, embeddedDir: cfg.databaseUrl ? undefined : path.join(cfg.dataDir, 'pgdata') });
  try {
    const r = await createAuditLog(createAuditRepo(db)).verify();
    if (r.ok) process.stdout.write(`audit chain intact: ${r.count} events\n`);
    else {
      process.stdout.write(`audit chain BROKEN at event id ${r.brokenAt} (${r.reason}); ${r.count} events before it verify\n`);
      process.exitCode = 1;
    }
  } finally {
    await db.destroy();
  }
});

program
  .command('edge')
  .description('run the DICOM TLS gateway for devices without TLS (see README: tresor edge)')
  .requiredOption('--config <file>', 'edge.json, e.g. from `tresor device bundle AE --edge`')
  .option('--log-level <level>', 'pino log level', 'info')
  .action(async (opts: { config: string; logLevel: string }) => {
    const { runEdge } = await import('./edge/run.js');
    await runEdge(opts.config, opts.logLevel);
  });

program.parseAsync(process.argv).catch((e) => {
  process.stderr.write(`tresor: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
