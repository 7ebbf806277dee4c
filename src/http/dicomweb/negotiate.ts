// Choosing what to send for WADO-RS (PS3.18 §8.7.8): the Selected Media Type and the
// Selected Transfer Syntax of each part, from the Accept header ranges (best q first).
//  - a transfer-syntax parameter of "*" accepts the stored syntax as is (§8.7.3.5.2);
//  - no parameter means the default syntax of the media type (Tables 8.7.3-2/-4):
//    Explicit VR Little Endian for application/dicom and application/octet-stream;
//  - what cannot be satisfied is 406 (§8.7.7), decided before any byte is sent.

import { TS, isEncapsulated } from '../../core/dicom/transfer-syntaxes.js';
import { canTranscode } from '../../core/dicom/pixels/transcode.js';
import { multipartType, type MediaRange } from './accept.js';

/** PS3.18 Table 8.7.3-4: media types of compressed pixel data, by transfer syntax. */
export const PIXEL_MEDIA_TYPES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'image/jpeg',
  '1.2.840.10008.1.2.4.51': 'image/jpeg',
  '1.2.840.10008.1.2.4.57': 'image/jpeg',
  '1.2.840.10008.1.2.4.70': 'image/jpeg',
  '1.2.840.10008.1.2.5': 'image/dicom-rle',
  '1.2.840.10008.1.2.4.80': 'image/jls',
  '1.2.840.10008.1.2.4.81': 'image/jls',
  '1.2.840.10008.1.2.4.90': 'image/jp2',
  '1.2.840.10008.1.2.4.91': 'image/jp2',
  '1.2.840.10008.1.2.4.92': 'image/jpx',
  '1.2.840.10008.1.2.4.93': 'image/jpx',
  '1.2.840.10008.1.2.4.110': 'image/jxl',
  '1.2.840.10008.1.2.4.111': 'image/jxl',
  '1.2.840.10008.1.2.4.112': 'image/jxl',
  '1.2.840.10008.1.2.4.201': 'image/jphc',
  '1.2.840.10008.1.2.4.202': 'image/jphc',
  '1.2.840.10008.1.2.4.203': 'image/jphc',
  '1.2.840.10008.1.2.4.100': 'video/mpeg2',
  '1.2.840.10008.1.2.4.101': 'video/mpeg2',
  '1.2.840.10008.1.2.4.102': 'video/mp4',
  '1.2.840.10008.1.2.4.103': 'video/mp4',
  '1.2.840.10008.1.2.4.104': 'video/mp4',
  '1.2.840.10008.1.2.4.105': 'video/mp4',
  '1.2.840.10008.1.2.4.106': 'video/mp4',
};
/** Older names clients still send (dicomweb-client, cornerstone). */
const ALIASES: Readonly<Record<string, string>> = { 'image/x-dicom-rle': 'image/dicom-rle', 'image/x-jls': 'image/jls' };
/** Default transfer syntax of each compressed media type (PS3.18 Table 8.7.3-4). */
const DEFAULT_TS: Readonly<Record<string, string>> = {
  'image/jpeg': '1.2.840.10008.1.2.4.50',
  'image/dicom-rle': '1.2.840.10008.1.2.5',
  'image/jls': '1.2.840.10008.1.2.4.80',
  'image/jp2': '1.2.840.10008.1.2.4.90',
  'image/jpx': '1.2.840.10008.1.2.4.92',
  'image/jxl': '1.2.840.10008.1.2.4.110',
  'image/jphc': '1.2.840.10008.1.2.4.201',
};

export type InstanceChoice = { mode: 'stored'; ts: string } | { mode: 'transcode'; ts: string };

/** Does this range accept a multipart/related response whose parts are `type/subtype`? */
function acceptsMultipartOf(r: MediaRange, type: string, subtype: string): boolean {
  if (r.type === '*' && r.subtype === '*') return true;
  if (r.type !== 'multipart' || (r.subtype !== 'related' && r.subtype !== '*')) return false;
  const t = multipartType(r);
  if (!t) return true; // multipart/related without type: its default root type (RFC 2387) is ours to choose
  const tt = ALIASES[`${t.type}/${t.subtype}`]?.split('/') ?? [t.type, t.subtype];
  return (tt[0] === '*' || tt[0] === type) && (tt[1] === '*' || tt[1] === subtype);
}

/**
 * Study/series/instance retrieval: multipart/related; type="application/dicom".
 * Returns the choice for one stored instance, or null when no range can be met.
 */
export function chooseInstance(ranges: MediaRange[], storedTs: string, size: number): InstanceChoice | null {
  for (const r of ranges) {
    if (!acceptsMultipartOf(r, 'application', 'dicom')) continue;
    const wanted = r.params['transfer-syntax'] ?? TS.explicitLittle;
    if (wanted === '*' || wanted === storedTs) return { mode: 'stored', ts: storedTs };
    if (canTranscode(storedTs, wanted, size)) return { mode: 'transcode', ts: wanted };
  }
  return null;
}

/** WADO-URI application/dicom (PS3.18 §9.4.2.4: transferSyntax parameter, default Explicit VR Little Endian). */
export function chooseUriInstance(transferSyntax: string | undefined, storedTs: string, size: number): InstanceChoice | null {
  const wanted = transferSyntax ?? TS.explicitLittle;
  if (wanted === '*' || wanted === storedTs) return { mode: 'stored', ts: storedTs };
  if (canTranscode(storedTs, wanted, size)) return { mode: 'transcode', ts: wanted };
  return null;
}

export interface PixelChoice {
  /** Content-Type of each part (or of the single-part body), with its transfer-syntax parameter. */
  contentType: string;
  /** Media type of the parts, for the multipart `type` parameter. */
  mediaType: string;
  multipart: boolean;
}

/**
 * Frames and pixel bulk data (PS3.18 §8.7.3.3.2, §8.7.3.4). Native pixel data goes
 * out as application/octet-stream (Explicit VR Little Endian byte order);
 * encapsulated pixel data goes out as stored, either with its image media type or,
 * when the client asked for application/octet-stream with transfer-syntax=*, as
 * octet-stream labelled with the stored syntax (what OHIF/cornerstone ask for).
 * Decompressing on the server is not offered: a client that accepts only
 * uncompressed frames of a compressed instance gets 406.
 */
export function choosePixel(ranges: MediaRange[], storedTs: string, allowSinglePart: boolean): PixelChoice | null {
  const native = !isEncapsulated(storedTs);
  const stored = PIXEL_MEDIA_TYPES[storedTs];
  const octet = (ts: string) => `application/octet-stream; transfer-syntax=${ts}`;
  for (const r of ranges) {
    const ts = r.params['transfer-syntax'];
    const singlePart = allowSinglePart && r.type !== 'multipart' && !(r.type === '*' && r.subtype === '*');
    const matches = (type: string, subtype: string) =>
      singlePart ? (r.type === '*' || r.type === type) && (r.subtype === '*' || r.subtype === subtype || ALIASES[`${r.type}/${r.subtype}`] === `${type}/${subtype}`) : acceptsMultipartOf(r, type, subtype);
    if (matches('application', 'octet-stream')) {
      if (native && (ts === undefined || ts === '*' || ts === TS.explicitLittle)) {
        return { contentType: octet(TS.explicitLittle), mediaType: 'application/octet-stream', multipart: !singlePart };
      }
      if (!native && (ts === '*' || ts === storedTs)) return { contentType: octet(storedTs), mediaType: 'application/octet-stream', multipart: !singlePart };
      if (r.type !== '*' || r.subtype !== '*') continue;
    }
    if (!native && stored) {
      const [t, s] = stored.split('/');
      if (matches(t, s) && (ts === undefined ? DEFAULT_TS[stored] === storedTs || r.type === '*' || r.subtype === '*' : ts === '*' || ts === storedTs)) {
        return { contentType: `${stored}; transfer-syntax=${storedTs}`, mediaType: stored, multipart: !singlePart };
      }
    }
  }
  return null;
}
