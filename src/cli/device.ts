// tresor device add|list|revoke|passcode (bundle: bundle.ts)

import type { Command } from 'commander';
import { generatePassword } from '../core/identity/passwords.js';
import { connect, seg, withServerOptions, type ServerOptions } from './api-client.js';
import { readSecretFile } from './credentials.js';
import { emit, table, usageError } from './output.js';
import { collect, parsePort, parseRole, rolesText } from './args.js';
import { bundleCommand } from './bundle.js';

const deviceLine = (d: any): string =>
  `${d.aeTitle}: ${d.disabled ? 'disabled' : 'enabled'}; roles ${rolesText(d.roles)}` +
  `${d.host ? `; C-MOVE destination ${d.host}:${d.port}` : ''}${d.certificate ? `; certificate until ${d.certificate.notAfter}` : '; no certificate'}${d.hasPasscode ? '; passcode set' : ''}`;

export function deviceCommands(program: Command): void {
  const device = program.command('device').description('DICOM devices (online: through the admin API)');

  withServerOptions(
    device
      .command('add')
      .description('register a device by its AE title')
      .argument('<aeTitle>', "the device's calling AE title")
      .option('--role <department:role>', 'a role in a department (repeatable; reader, writer or admin)', collect, [])
      .option('--host <host>', 'where Tresor sends C-MOVE results (with --port; default: not a C-MOVE destination)')
      .option('--port <port>', "the device's storage SCP port", parsePort),
  ).action(async (aeTitle: string, opts: ServerOptions & { role: string[]; host?: string; port?: number }) => {
    if ((opts.host === undefined) !== (opts.port === undefined)) throw usageError('--host and --port go together: give both or neither');
    const roles = opts.role.map(parseRole);
    const api = await connect(opts);
    const d = await api.request('POST', '/admin/devices', { aeTitle, roles, ...(opts.host ? { host: opts.host, port: opts.port } : {}) });
    emit(opts.json, d, () => [`registered ${deviceLine(d)}`, `next: tresor device bundle ${aeTitle} --out DIR`]);
  });

  withServerOptions(device.command('list').description('list the devices you may see')).action(async (opts: ServerOptions) => {
    const api = await connect(opts);
    const { devices } = await api.request('GET', '/admin/devices');
    emit(opts.json, devices, () =>
      table(
        ['AE-TITLE', 'STATE', 'ROLES', 'DESTINATION', 'CERTIFICATE-UNTIL', 'PASSCODE'],
        devices.map((d: any) => [
          d.aeTitle,
          d.disabled ? 'disabled' : 'enabled',
          rolesText(d.roles),
          d.host ? `${d.host}:${d.port}` : '-',
          d.certificate?.notAfter ?? '-',
          d.hasPasscode ? 'yes' : 'no',
        ]),
      ),
    );
  });

  withServerOptions(device.command('revoke').description("revoke the device's certificate (it can no longer connect with it)").argument('<aeTitle>', 'AE title')).action(
    async (aeTitle: string, opts: ServerOptions) => {
      const api = await connect(opts);
      await api.request('DELETE', `/admin/devices/${seg(aeTitle)}/certificate`);
      emit(opts.json, { aeTitle, revoked: true }, () => `revoked the certificate of ${aeTitle}`);
    },
  );

  withServerOptions(
    device
      .command('passcode')
      .description("set the device's passcode (DICOM user identity, PS3.7 §D.3.3.7), or clear it")
      .argument('<aeTitle>', 'AE title')
      .option('--passcode-file <file>', 'file (mode 0600) holding the passcode (default: a random one, printed once)')
      .option('--clear', 'remove the passcode', false),
  ).action(async (aeTitle: string, opts: ServerOptions & { passcodeFile?: string; clear: boolean }) => {
    if (opts.clear && opts.passcodeFile) throw usageError('--clear and --passcode-file exclude each other');
    const passcode = opts.clear ? undefined : opts.passcodeFile ? readSecretFile(opts.passcodeFile, 'passcode file') : generatePassword();
    const api = await connect(opts);
    if (passcode === undefined) {
      await api.request('DELETE', `/admin/devices/${seg(aeTitle)}/passcode`);
      emit(opts.json, { aeTitle, passcode: null }, () => `cleared the passcode of ${aeTitle}`);
      return;
    }
    await api.request('PUT', `/admin/devices/${seg(aeTitle)}/passcode`, { passcode });
    const shown = opts.passcodeFile ? {} : { passcode };
    emit(opts.json, { aeTitle, ...shown }, () => [`set the passcode of ${aeTitle}`, ...(opts.passcodeFile ? [] : [`passcode (shown once): ${passcode}`])]);
  });

  bundleCommand(device);
}
