/**
 * @module Reading an update body from a stream into one buffer, refusing it as soon as it passes the cap.
 */

/** Reads a body into one buffer, or returns null as soon as it passes `cap` bytes. */
export async function readCapped(body: ReadableStream<Uint8Array>, cap: number, declared: number | null): Promise<Uint8Array | null> {
  if (declared !== null && declared > cap) {
    await body.cancel();
    return null;
  }
  const reader = body.getReader();
  let buf = new Uint8Array(declared ?? 64 * 1024);
  let len = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (len + value.byteLength > cap) {
      await reader.cancel();
      return null;
    }
    if (len + value.byteLength > buf.byteLength) {
      const grown = new Uint8Array(Math.min(cap, Math.max(buf.byteLength * 2, len + value.byteLength)));
      grown.set(buf.subarray(0, len));
      buf = grown;
    }
    buf.set(value, len);
    len += value.byteLength;
  }
  return len === buf.byteLength ? buf : buf.subarray(0, len);
}
