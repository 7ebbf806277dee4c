// dcmjs and the codecs take an ArrayBuffer; a Buffer's backing store may be a
// larger (pooled, possibly shared) one, so they get a copy of exactly its bytes.

export function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}
