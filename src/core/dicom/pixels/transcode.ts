// Transcoding a whole stored object to Explicit VR Little Endian, the default
// transfer syntax of DICOMweb (PS3.18 Table 8.7.3-2), for clients that do not accept
// the stored one. Uses dcmjs-codecs (the codec library dcmjs-imaging itself renders
// with: libjpeg-turbo, CharLS, OpenJPEG compiled to WebAssembly) — no codec of ours.
//
// It works on the whole object in memory, so it is limited to MAX_TRANSCODE_BYTES;
// larger objects are only served in their stored syntax (the client gets 406 and
// can ask for transfer-syntax=*). The stored bytes are never changed.

import { createRequire } from 'node:module';
import { toArrayBuffer } from '../../../lib/array-buffer.js';
import { semaphore } from '../../../lib/semaphore.js';
import { silenceDcmjs } from '../dcmjs-quiet.js';
import { DECODABLE_TRANSFER_SYNTAXES, TS } from '../transfer-syntaxes.js';

export const MAX_TRANSCODE_BYTES = 64 * 1024 * 1024;
/** Transcodes at once: each holds the object, decoded pixels and the output (~4× its size). */
const transcodeSlot = semaphore(2);

/** What dcmjs-codecs decodes: the registry's decodable set, the same one the DIMSE door uses. */
export function canTranscode(from: string, to: string, size: number): boolean {
  return to === TS.explicitLittle && from !== to && DECODABLE_TRANSFER_SYNTAXES.has(from) && size <= MAX_TRANSCODE_BYTES;
}

interface Codecs {
  NativeCodecs: { initializeAsync(o?: object): Promise<void>; isInitialized(): boolean };
  Transcoder: new (buf: ArrayBuffer) => { transcode(ts: string): void; getDicomPart10(): ArrayBuffer };
}
let codecs: Promise<Codecs> | undefined;

function loadCodecs(): Promise<Codecs> {
  codecs ??= (async () => {
    const require = createRequire(import.meta.url);
    const c = require('dcmjs-codecs') as Codecs & { log?: { setLevel?(l: string): void } };
    c.log?.setLevel?.('silent');
    // dcmjs-codecs loads its own nested copy of dcmjs: silence that one.
    silenceDcmjs(createRequire(require.resolve('dcmjs-codecs'))('dcmjs'));
    if (!c.NativeCodecs.isInitialized()) await c.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    return c;
  })();
  return codecs;
}

/**
 * Transcodes a Part 10 object, read by `load` once a slot is free (so waiting requests
 * hold nothing); throws when the codecs refuse it.
 */
export function transcodeToExplicitLittle(load: () => Promise<Buffer>): Promise<Buffer> {
  return transcodeSlot(async () => transcode(await load()));
}

async function transcode(part10: Buffer): Promise<Buffer> {
  const c = await loadCodecs();
  const t = new c.Transcoder(toArrayBuffer(part10));
  t.transcode(TS.explicitLittle);
  return Buffer.from(t.getDicomPart10());
}
