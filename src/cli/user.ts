// tresor user add|list|disable|enable|reset-password|unlock|roles

import { generatePassword } from '../core/identity/passwords.js';
import type { Command } from 'commander';
import { connect, seg, withServerOptions, type ServerOptions } from './api-client.js';
import { readSecretFile } from './credentials.js';
import { emit, table } from './output.js';
import { collect, parseRole, rolesText } from './args.js';

type NewPasswordOpts = ServerOptions & { newPasswordFile?: string };

/** The password to set: from a 0600 file, or generated and printed once. */
function newPassword(opts: NewPasswordOpts): { password: string; generated: boolean } {
  if (opts.newPasswordFile) return { password: readSecretFile(opts.newPasswordFile, 'new password file'), generated: false };
  return { password: generatePassword(), generated: true };
}

const userLine = (u: any): string =>
  `${u.username}: ${u.disabled ? 'disabled' : 'enabled'}${u.globalAdmin ? ', global admin' : ''}${u.mustChangePassword ? ', must change password' : ''}; roles ${rolesText(u.roles)}`;

export function userCommands(program: Command): void {
  const user = program.command('user').description('user accounts (online: through the admin API)');
  const newPasswordHelp = 'file (mode 0600) holding the password to set (default: a random one, printed once)';

  withServerOptions(
    user
      .command('add')
      .description('create a user with the password from --new-password-file, or a generated one printed once')
      .argument('<username>', 'account name')
      .option('--role <department:role>', 'a role in a department (repeatable; role: reader, writer or admin)', collect, [])
      .option('--global-admin', 'make the user a global administrator', false)
      .option('--new-password-file <file>', newPasswordHelp),
  ).action(async (username: string, opts: NewPasswordOpts & { role: string[]; globalAdmin: boolean }) => {
    const roles = opts.role.map(parseRole);
    const { password, generated } = newPassword(opts);
    const api = await connect(opts);
    const u = await api.request('POST', '/admin/users', { username, password, roles, ...(opts.globalAdmin ? { globalAdmin: true } : {}) });
    emit(opts.json, { user: u, ...(generated ? { password } : {}) }, () => [`created ${userLine(u)}`, ...(generated ? [`password (shown once): ${password}`] : [])]);
  });

  withServerOptions(user.command('list').description('list the users you may see')).action(async (opts: ServerOptions) => {
    const api = await connect(opts);
    const { users } = await api.request('GET', '/admin/users');
    emit(opts.json, users, () =>
      table(
        ['USERNAME', 'STATE', 'GLOBAL-ADMIN', 'ROLES'],
        users.map((u: any) => [u.username, u.disabled ? 'disabled' : u.mustChangePassword ? 'must-change-password' : 'enabled', String(u.globalAdmin), rolesText(u.roles)]),
      ),
    );
  });

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    withServerOptions(
      user
        .command(name)
        .description(disabled ? 'disable a user (its sessions end at once)' : 'enable a disabled user')
        .argument('<username>', 'account name'),
    ).action(async (username: string, opts: ServerOptions) => {
      const api = await connect(opts);
      const u = await api.request('PATCH', `/admin/users/${seg(username)}`, { disabled });
      emit(opts.json, u, () => `${name}d ${userLine(u)}`);
    });
  }

  withServerOptions(
    user
      .command('reset-password')
      .description("set a one-time password (to be changed at next login); ends the user's sessions and clears a login lock")
      .argument('<username>', 'account name')
      .option('--new-password-file <file>', newPasswordHelp),
  ).action(async (username: string, opts: NewPasswordOpts) => {
    const { password, generated } = newPassword(opts);
    const api = await connect(opts);
    const u = await api.request('PATCH', `/admin/users/${seg(username)}`, { password });
    emit(opts.json, { user: u, ...(generated ? { password } : {}) }, () => [`reset the password of ${u.username}`, ...(generated ? [`password (shown once): ${password}`] : [])]);
  });

  withServerOptions(user.command('unlock').description('clear the login lock of a user after too many failed logins').argument('<username>', 'account name')).action(
    async (username: string, opts: ServerOptions) => {
      const api = await connect(opts);
      const u = await api.request('POST', `/admin/users/${seg(username)}/unlock`);
      emit(opts.json, u, () => `unlocked ${u.username}`);
    },
  );

  withServerOptions(
    user
      .command('roles')
      .description("show a user's roles; grant or revoke with the options")
      .argument('<username>', 'account name')
      .option('--grant <department:role>', 'grant a role (repeatable)', collect, [])
      .option('--revoke <department:role>', 'revoke a role (repeatable)', collect, []),
  ).action(async (username: string, opts: ServerOptions & { grant: string[]; revoke: string[] }) => {
    const grants = opts.grant.map(parseRole);
    const revokes = opts.revoke.map(parseRole);
    const api = await connect(opts);
    for (const r of grants) await api.request('POST', `/admin/users/${seg(username)}/roles`, r);
    for (const r of revokes) await api.request('DELETE', `/admin/users/${seg(username)}/roles/${seg(r.department)}/${r.role}`);
    const u = await api.request('GET', `/admin/users/${seg(username)}`);
    emit(opts.json, u, () => userLine(u));
  });
}
