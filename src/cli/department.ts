// tresor department add|list

import type { Command } from 'commander';
import { connect, withServerOptions, type ServerOptions } from './api-client.js';
import { emit, table } from './output.js';

export function departmentCommands(program: Command): void {
  const dept = program.command('department').description('departments (online: through the admin API)');

  withServerOptions(dept.command('add').description('create a department').argument('<name>', 'department name')).action(async (name: string, opts: ServerOptions) => {
    const api = await connect(opts);
    const d = await api.request('POST', '/admin/departments', { name });
    emit(opts.json, d, () => `created department ${d.name}`);
  });

  withServerOptions(dept.command('list').description('list the departments you may see')).action(async (opts: ServerOptions) => {
    const api = await connect(opts);
    const { departments } = await api.request('GET', '/admin/departments');
    emit(opts.json, departments, () =>
      table(['NAME', 'DISABLED', 'CREATED'], departments.map((d: any) => [d.name, String(d.disabled), d.createdAt])),
    );
  });
}
