// The `tresor` command: builds the program from one module per command group and maps
// every failure to an exit code and one line (output.ts). src/cli.ts is the bin entry.

import { Command, CommanderError } from 'commander';
import { DataDirLockedError } from '../lib/data-dir-lock.js';
import { departmentCommands } from './department.js';
import { deviceCommands } from './device.js';
import { backupCommands } from './backup.js';
import { importCommand } from './import.js';
import { restoreCommand } from './restore.js';
import { offlineCommands } from './offline.js';
import { passwordCommand } from './password.js';
import { CliError, EXIT } from './output.js';
import { serverCommands } from './server.js';
import { userCommands } from './user.js';

export { packageVersion } from '../lib/package-version.js';
import { packageVersion } from '../lib/package-version.js';

export function buildProgram(): Command {
  const program = new Command('tresor')
    .description(
      'Tresor: a hardened, minimal PACS.\n' +
        'Online commands (department, user, device, import, password) talk to the running server as an administrator: ' +
        'TRESOR_URL, TRESOR_CA, TRESOR_USER, TRESOR_PASSWORD_FILE.\n' +
        'Exit codes: 0 done, 1 refused or partly failed, 2 usage, configuration, connection or login error.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'describe a command and its options')
    .showHelpAfterError('(run with --help for the options)')
    // Subcommands created below inherit this: Commander's errors come back to us (exit 2).
    .exitOverride();
  serverCommands(program);
  offlineCommands(program);
  departmentCommands(program);
  userCommands(program);
  deviceCommands(program);
  importCommand(program);
  passwordCommand(program);
  backupCommands(program);
  restoreCommand(program);
  return program;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EADDRINUSE', 'EACCES']);

/** Exit code and one line for a failure. */
export function describeFailure(e: unknown): { code: number; message?: string } {
  if (e instanceof CommanderError) {
    // Help and version are printed by Commander and are not failures.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return { code: EXIT.ok };
    return { code: EXIT.usage }; // Commander already printed the message
  }
  if (e instanceof CliError) return { code: e.exitCode, message: e.message };
  if (e instanceof DataDirLockedError) return { code: EXIT.refused, message: e.message };
  const err = e as { message?: string; code?: string; kind?: string };
  const message = String(err?.message ?? e).split('\n')[0];
  // The core's typed errors (core/errors.ts) were decided on purpose: a refusal.
  if (typeof err?.kind === 'string') return { code: EXIT.refused, message };
  if (typeof err?.code === 'string' && NETWORK_CODES.has(err.code)) return { code: EXIT.usage, message: `${message}: check the address and port settings` };
  return { code: EXIT.refused, message };
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    const { code, message } = describeFailure(e);
    if (message) process.stderr.write(`tresor: ${message}\n`);
    process.exit(code);
  }
}
