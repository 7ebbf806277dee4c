// Exit codes and output of the `tresor` command, which scripts rely on:
//   0  done;
//   1  the operation was refused or partly failed (the server said no: 403, 404, 409, …;
//      an audit chain that does not verify; a data directory in use);
//   2  usage, configuration, connection or login error (nothing was attempted).
// Errors are one line on stderr that says what to do next; never a stack trace.
// `--json` prints one JSON document on stdout for programs; people get plain lines.

export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usageError = (message: string): CliError => new CliError(message, EXIT.usage);
export const refused = (message: string): CliError => new CliError(message, EXIT.refused);

/** Prints `data` as JSON with --json, else the human text (lines without a trailing newline). */
export function emit(json: boolean | undefined, data: unknown, human: () => string | string[]): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  const text = human();
  const lines = Array.isArray(text) ? text : [text];
  if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
}

/** A plain text table: columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)];
}
