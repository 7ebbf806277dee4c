// Progress of a long command on stderr (stdout stays for the result): on a terminal one
// line redrawn in place with \r (files, MB, rate, ETA once the total is known); otherwise a
// plain line every few seconds, which logs and CI keep readably.

export interface ProgressState {
  files: number;
  bytes: number;
  /** Known once the counting walk has finished. */
  totalFiles?: number;
  totalBytes?: number;
}

const MB = 1024 * 1024;
const mb = (n: number) => (n / MB).toFixed(1);

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface Progress {
  stop(): void;
}

export function startProgress(state: ProgressState, out: NodeJS.WriteStream = process.stderr): Progress {
  const tty = Boolean(out.isTTY);
  const started = Date.now();
  const render = (): string => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? state.bytes / secs : 0;
    const files = state.totalFiles !== undefined ? `${state.files}/${state.totalFiles} files` : `${state.files} files`;
    const bytes = state.totalBytes !== undefined ? `${mb(state.bytes)}/${mb(state.totalBytes)} MB` : `${mb(state.bytes)} MB`;
    const eta = state.totalBytes !== undefined && rate > 0 ? `ETA ${duration((state.totalBytes - state.bytes) / rate)}` : 'ETA ?';
    let bar = '';
    if (tty && state.totalBytes !== undefined && state.totalFiles !== undefined) {
      // Files and bytes both count: a folder of many small files moves by files.
      const f = state.totalBytes > 0 ? state.bytes / state.totalBytes : state.totalFiles > 0 ? state.files / state.totalFiles : 1;
      const filled = Math.max(0, Math.min(20, Math.round(f * 20)));
      bar = `[${'#'.repeat(filled)}${'-'.repeat(20 - filled)}] `;
    }
    return `${bar}${files}  ${bytes}  ${mb(rate)} MB/s  ${eta}`;
  };
  const timer = setInterval(
    () => {
      if (tty) out.write(`\r\x1b[2K${render()}`);
      else out.write(`progress: ${render()}\n`);
    },
    tty ? 250 : 5000,
  );
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (tty) out.write(`\r\x1b[2K`);
    },
  };
}
