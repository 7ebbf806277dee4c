// The decoding work itself, run only inside a codec child process (codec-child.ts,
// started by pixel-codec.ts): transcoding a whole object or a data set to a native
// syntax, and rendering one frame. No codec here is ours: dcmjs-codecs (transcoding)
// and dcmjs-imaging (rendering) run libjpeg-turbo, CharLS, OpenJPEG, OpenJPH, libjxl
// and an RLE decoder compiled to WebAssembly; jpeg-js and pngjs encode the result.
//
// Where they allocate (read in their sources, dcmjs-codecs 0.0.8 / dcmjs-imaging 0.2.5):
//  - Transcoder.transcode → Codec._baseDecodeImpl: one WASM decode per frame, for
//    NumberOfFrames frames (one fragment per frame), each output copied into a JS
//    ArrayBuffer and all concatenated at the end — so the JS side holds frames × the
//    decoded frame size: a header with many frames is a bomb however small the input.
//  - The decoded size of a frame is taken from the *codestream*, not the DICOM header,
//    for JPEG (libjpeg image_width × image_height), JPEG-LS (CharLS header) and HTJ2K
//    (SIZ); JPEG 2000 decodes the whole OpenJPEG image before copying Rows × Columns of it;
//    RLE fills a Rows × Columns buffer (bounded) but trusts segment offsets.
//  - The WebAssembly memory (256 MiB initial) may grow to 2 GiB (memory section max
//    32768 pages) — outside V8's heap, so --max-old-space-size does not limit it.
//  - dcmjs-imaging bundles its own copy of the same WebAssembly module and decodes
//    exactly one frame per render; jpeg-js (encode only here) and pngjs allocate in
//    proportion to the RGBA image.
// So: the promised size is checked before decoding, every frame a decoder returns is
// checked against it before the next one runs, and the WebAssembly memory maximum is
// lowered (the module's memory section is rewritten before it is instantiated).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import dcmjs from '../dcmjs.js';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { silenceDcmjs } from '../dcmjs-quiet.js';
import { promisedBytes, shapeOfElements, type PixelShape } from './pixel-bounds.js';
import { fit, type RenderOptions } from './render.js';

const require = createRequire(import.meta.url);

/** An error the parent maps to a reason: `too-large` (over the promise or the cap) or `failed`. */
export class CodecJobError extends Error {
  constructor(
    readonly code: 'too-large' | 'failed' | 'not-an-image',
    message: string,
    /** A WebAssembly trap: the module's state is suspect. */
    readonly trap = false,
  ) {
    super(message);
  }
}

/** What one job may produce. */
class Budget {
  private used = 0;
  constructor(
    private readonly frame: number,
    private readonly total: number,
  ) {}
  take(n: number): void {
    // +1: decoders pad odd frames to even length (PS3.5 §8.1.1).
    if (n > this.frame + 1) throw new CodecJobError('too-large', 'a frame decoded larger than its header promises');
    this.used += n;
    if (this.used > this.total + 64) throw new CodecJobError('too-large', 'the pixel data decoded larger than its header promises');
  }
}
let budget: Budget | undefined;

/** Lowers the maximum of a WebAssembly module's memory (section 5) to `maxPages`. */
export function withMemoryMax(wasm: Buffer, maxPages: number): Buffer {
  let p = 8;
  const leb = () => {
    let r = 0;
    let s = 0;
    let b: number;
    do {
      b = wasm[p++];
      r += (b & 0x7f) * 2 ** s;
      s += 7;
    } while (b & 0x80);
    return r;
  };
  const enc = (v: number) => {
    const out: number[] = [];
    do {
      let b = v & 0x7f;
      v = Math.floor(v / 128);
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return out;
  };
  while (p < wasm.length) {
    const idStart = p;
    const id = wasm[p++];
    const size = leb();
    const body = p;
    if (id === 5) {
      const count = leb();
      if (count !== 1) throw new Error('unexpected WebAssembly memory section');
      const flags = leb();
      const min = leb();
      const max = flags & 1 ? leb() : Infinity;
      const newMax = Math.max(min, Math.min(max, maxPages));
      const content = Buffer.from([...enc(1), flags | 1, ...enc(min), ...enc(newMax)]);
      const section = Buffer.concat([Buffer.from([5, ...enc(content.length)]), content]);
      return Buffer.concat([wasm.subarray(0, idStart), section, wasm.subarray(body + size)]);
    }
    p = body + size;
  }
  throw new Error('no WebAssembly memory section');
}

interface CodecsModule {
  NativeCodecs: Record<string, any> & { initializeAsync(o?: object): Promise<void> };
  Transcoder: new (buf: ArrayBuffer, ts?: string) => { transcode(ts: string): void; getDicomPart10(): ArrayBuffer; getDicomDataset(): ArrayBuffer; getElements(): Record<string, unknown> };
  log?: { setLevel?(l: string): void };
}
let codecs: CodecsModule;
let imaging: any;

const DECODERS = ['decodeRle', 'decodeJpeg', 'decodeJpegLs', 'decodeJpeg2000', 'decodeHtJpeg2000', 'decodeJpegXl'];

/** Loads both libraries with the lowered WebAssembly memory maximum and wraps every decoder. */
export async function initCodecs(wasmMaxBytes: number): Promise<void> {
  codecs = require('dcmjs-codecs') as CodecsModule;
  codecs.log?.setLevel?.('silent');
  silenceDcmjs(createRequire(require.resolve('dcmjs-codecs'))('dcmjs'));
  imaging = require('dcmjs-imaging');
  imaging.log?.setLevel?.('silent');
  silenceDcmjs(createRequire(require.resolve('dcmjs-imaging'))('dcmjs'));

  // Both read the module from the path given (fs.promises.readFile), once, at initialisation.
  const original = fs.readFileSync(path.join(path.dirname(require.resolve('dcmjs-codecs')), 'dcmjs-native-codecs.wasm'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tresor-codecs-'));
  try {
    const file = path.join(dir, 'codecs.wasm');
    fs.writeFileSync(file, withMemoryMax(original, Math.floor(wasmMaxBytes / 65536)), { mode: 0o600 });
    await codecs.NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: file, logCodecsInfo: false, logCodecsTrace: false });
    await imaging.NativePixelDecoder.initializeAsync({ webAssemblyModulePathOrUrl: file, logNativeDecodersMessages: false });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // Every frame a decoder returns is counted before the library asks for the next one.
  for (const name of DECODERS) {
    const nc = codecs.NativeCodecs;
    const orig = nc[name] as ((ctx: unknown, p: unknown) => { getDecodedBuffer(): Uint8Array }) | undefined;
    if (orig) {
      nc[name] = (ctx: unknown, params: unknown) => {
        const r = orig.call(nc, ctx, params);
        budget?.take(r.getDecodedBuffer().length);
        return r;
      };
    }
    const npd = imaging.NativePixelDecoder;
    const origImg = npd[name] as ((pixel: unknown, data: unknown, p: unknown) => Uint8Array) | undefined;
    if (origImg) {
      npd[name] = (pixel: unknown, data: unknown, params: unknown) => {
        const r = origImg.call(npd, pixel, data, params);
        budget?.take(r.length);
        return r;
      };
    }
  }
}

function checkPromise(shape: PixelShape, hasPixels: boolean, maxOutputBytes: number): void {
  budget = undefined;
  if (!hasPixels) return;
  const { frame, total } = promisedBytes(shape);
  if (total > maxOutputBytes) throw new CodecJobError('too-large', `the header promises ${total} bytes of pixels, above the ${maxOutputBytes}-byte limit`);
  budget = new Budget(frame, total);
}

const copy = (u: Uint8Array): ArrayBuffer => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;

function codecFailure(e: unknown): never {
  if (e instanceof CodecJobError) throw e;
  // WebAssembly traps (out of its memory, bad offsets) and the libraries' own errors.
  throw new CodecJobError('failed', e instanceof Error ? e.message.slice(0, 200) : 'decoder failed', e instanceof WebAssembly.RuntimeError);
}

/** A whole Part 10 object → Part 10 in `to` (a native syntax). */
export function transcodeObject(part10: Uint8Array, to: string, maxOutputBytes: number): Uint8Array {
  try {
    const t = new codecs.Transcoder(copy(part10));
    const e = t.getElements();
    checkPromise(shapeOfElements(e), e.PixelData !== undefined, maxOutputBytes);
    t.transcode(to);
    return new Uint8Array(t.getDicomPart10());
  } catch (e) {
    codecFailure(e);
  } finally {
    budget = undefined;
  }
}

/** A data set (no File Meta Information) in `from` → a data set in `to` (what a C-STORE sends). */
export function transcodeDataset(dataset: Uint8Array, from: string, to: string, maxOutputBytes: number): Uint8Array {
  try {
    const t = new codecs.Transcoder(copy(dataset), from);
    const e = t.getElements();
    checkPromise(shapeOfElements(e), e.PixelData !== undefined, maxOutputBytes);
    t.transcode(to);
    return new Uint8Array(t.getDicomDataset());
  } catch (e) {
    codecFailure(e);
  } finally {
    budget = undefined;
  }
}

/**
 * Renders one frame: `header` is the dcmjs dictionary of the attributes before Pixel
 * Data, `frame` the frame's bytes in `transferSyntaxUid`, presented to dcmjs-imaging as
 * a one-frame data set (it concatenates the fragments of a one-frame data set).
 */
export function renderFrame(header: Record<string, any>, frame: Uint8Array, transferSyntaxUid: string, opts: RenderOptions, maxPixels: number): Uint8Array {
  const elements = dcmjs.data.DicomMetaDictionary.naturalizeDataset({ ...header });
  delete elements.PixelData;
  delete elements.FloatPixelData;
  delete elements.DoubleFloatPixelData;
  const rows = Number(elements.Rows) || 0;
  const columns = Number(elements.Columns) || 0;
  if (!rows || !columns) throw new CodecJobError('not-an-image', 'no image to render');
  if (rows * columns > maxPixels) throw new CodecJobError('too-large', 'image too large to render');
  elements.NumberOfFrames = 1;
  elements.PixelData = [copy(frame)];
  let result: { width: number; height: number; pixels: ArrayBuffer };
  try {
    checkPromise(shapeOfElements(elements), true, Number.MAX_SAFE_INTEGER);
    const image = new imaging.DicomImage(elements, transferSyntaxUid);
    result = image.render({
      frame: 0,
      ...(opts.window ? { windowLevel: new imaging.WindowLevel(opts.window.width, opts.window.center) } : {}),
      renderOverlays: true,
      calculateHistograms: false,
    });
  } catch (e) {
    codecFailure(e);
  } finally {
    budget = undefined;
  }
  let rgba: Buffer = Buffer.from(result.pixels);
  let { width, height } = result;
  if (width * height > maxPixels) throw new CodecJobError('too-large', 'image too large to render');
  if (opts.viewport) ({ data: rgba, width, height } = fit(rgba, width, height, opts.viewport.width, opts.viewport.height));
  if (opts.format === 'png') {
    const png = new PNG({ width, height });
    rgba.copy(png.data);
    return PNG.sync.write(png);
  }
  return jpeg.encode({ data: rgba, width, height }, opts.quality ?? 90).data;
}
