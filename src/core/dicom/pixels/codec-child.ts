// Entry of a codec child process (started by pixel-codec.ts through lib/process-pool.ts):
// loads the codecs once (its settings come as a JSON argument), says it is ready, then
// answers one job at a time. Everything that decodes untrusted pixel data runs here,
// never in the server process (issue 14, item 1).

import { serveChildJobs } from '../../../lib/process-pool.js';
import { CodecJobError, initCodecs, renderFrame, transcodeDataset, transcodeObject } from './codec-jobs.js';

// A codec error thrown across WebAssembly frames skips C++ destructors: its allocations
// leak in the module's memory. A trap (out of bounds, abort) may leave worse. So a child
// retires after any trap, and after a few failures of any kind.
const RETIRE_AFTER_FAILURES = 8;
let failures = 0;
function retire(e: unknown): boolean {
  failures++;
  return failures >= RETIRE_AFTER_FAILURES || e instanceof WebAssembly.RuntimeError || (e instanceof CodecJobError && e.trap);
}

const settings = JSON.parse(process.argv[2] ?? '{}') as { wasmMaxBytes: number; maxOutputBytes: number };

void serveChildJobs(
  async (m) => {
    switch (m.kind) {
      case 'transcode-object':
        return transcodeObject(m.part10, m.to, settings.maxOutputBytes);
      case 'transcode-dataset':
        return transcodeDataset(m.dataset, m.from, m.to, settings.maxOutputBytes);
      case 'render':
        return renderFrame(m.header, m.frame, m.transferSyntaxUid, m.opts, m.maxPixels);
      default:
        throw new Error('unknown job');
    }
  },
  { init: () => initCodecs(settings.wasmMaxBytes), retire },
);
