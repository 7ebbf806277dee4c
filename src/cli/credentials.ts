// The admin's password for the online commands: from --password-file /
// TRESOR_PASSWORD_FILE (refused when group or others may read it, like ssh refuses a
// private key), else a prompt without echo when stdin is a terminal.

import { readFileSync, statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { usageError } from './output.js';

/** Reads a secret from a file that only its owner can read; the trailing newline is dropped. */
export function readSecretFile(file: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw usageError(`${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}; check the path`);
  }
  if ((mode & 0o077) !== 0) {
    throw usageError(`${what} ${file} may be read by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): run chmod 600 ${file}`);
  }
  const text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (text === '') throw usageError(`${what} ${file} is empty: write the password into it`);
  return text;
}

/** Asks on the terminal; what is typed is not echoed. */
export async function promptSecret(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk, _enc, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = new Promise<string>((resolve) => rl.question(question, resolve));
    muted = true;
    const value = await answer;
    process.stderr.write('\n');
    return value;
  } finally {
    rl.close();
  }
}

export async function adminPassword(opts: { passwordFile?: string; user: string }): Promise<string> {
  if (opts.passwordFile) return readSecretFile(opts.passwordFile, 'password file');
  if (process.stdin.isTTY) return promptSecret(`password for ${opts.user}: `);
  throw usageError('no password: give --password-file FILE or TRESOR_PASSWORD_FILE (mode 0600), or run on a terminal to be asked');
}
