// tresor password: a user changes their own password from the command line — also the
// forced first change, so an admin holding <data>/initial-admin-password or
// <data>/recovered-admin-password can finish without curl. Online, through POST
// /auth/password: the server checks the password rules and audits the change.

import type { Command } from 'commander';
import { changeOwnPassword, withServerOptions, type ServerOptions } from './api-client.js';
import { promptSecret, readSecretFile } from './credentials.js';
import { emit, usageError } from './output.js';

async function chosenPassword(opts: { newPasswordFile?: string }): Promise<string> {
  if (opts.newPasswordFile) return readSecretFile(opts.newPasswordFile, 'new password file');
  if (!process.stdin.isTTY) throw usageError('no new password: give --new-password-file FILE (mode 0600), or run on a terminal to be asked');
  const first = await promptSecret('new password (at least 12 characters, not containing the user name): ');
  const again = await promptSecret('the new password again: ');
  if (first !== again) throw usageError('the two new passwords differ: run tresor password again');
  return first;
}

export function passwordCommand(program: Command): void {
  withServerOptions(
    program
      .command('password')
      .description("change your own password (the current one from --password-file or asked; also the forced change of a one-time password)")
      .option('--new-password-file <file>', 'file (mode 0600) holding the new password (default: asked twice on the terminal)'),
  ).action(async (opts: ServerOptions & { newPasswordFile?: string }) => {
    const newPassword = await chosenPassword(opts);
    await changeOwnPassword(opts, newPassword);
    emit(opts.json, { changed: true, user: opts.user }, () => [`password changed for ${opts.user}; log in with the new one (other sessions and tokens of ${opts.user} have ended)`]);
  });
}
