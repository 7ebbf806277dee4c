// Transcoding a whole stored object to Explicit VR Little Endian, the default
// transfer syntax of DICOMweb (PS3.18 Table 8.7.3-2), for clients that do not accept
// the stored one. The work runs in a codec child process (pixel-codec.ts), with
// dcmjs-codecs (libjpeg-turbo, CharLS, OpenJPEG… compiled to WebAssembly) — no codec
// of ours.
//
// The object is held in memory, so only objects up to MAX_TRANSCODE_BYTES as stored
// are offered; what they decode to is bounded separately (TRESOR_DECODE_MAX_BYTES,
// pixel-codec.ts). Larger objects are only served in their stored syntax (the client
// gets 406 and can ask for transfer-syntax=*). The stored bytes are never changed.

import { DECODABLE_TRANSFER_SYNTAXES, TS } from '../transfer-syntaxes.js';

export const MAX_TRANSCODE_BYTES = 64 * 1024 * 1024;

/** What dcmjs-codecs decodes: the registry's decodable set, the same one the DIMSE door uses. */
export function canTranscode(from: string, to: string, size: number): boolean {
  return to === TS.explicitLittle && from !== to && DECODABLE_TRANSFER_SYNTAXES.has(from) && size <= MAX_TRANSCODE_BYTES;
}
