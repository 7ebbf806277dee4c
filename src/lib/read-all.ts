// Collecting a stream into one buffer, for the few places that must hold a whole
// object (transcoding works on the object in memory); callers bound the size.

export async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
