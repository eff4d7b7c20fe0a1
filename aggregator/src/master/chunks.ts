/**
 * @module Values larger than one SQLite row (update deltas, the running sum's checkpoint, strategy
 * vectors), written as numbered chunks and read back into one buffer: once, for every table.
 */

/** Durable Object SQLite values must stay under 2 MB. */
export const CHUNK_BYTES = 1024 * 1024;

/** Calls `write` with copies of `bytes` of at most `chunkBytes` each; returns how many chunks. */
export function writeChunks(bytes: Uint8Array, write: (chunk: ArrayBuffer, idx: number) => void, chunkBytes = CHUNK_BYTES): number {
  let idx = 0;
  for (let off = 0; off < bytes.byteLength; off += chunkBytes, idx++) {
    write(bytes.slice(off, Math.min(off + chunkBytes, bytes.byteLength)).buffer, idx);
  }
  return idx;
}

/** Concatenates stored chunks (in index order) into `into`, which they must fill exactly. */
export function readChunks(rows: Iterable<{ data: ArrayBuffer }>, into: Uint8Array, what: string): Uint8Array {
  let off = 0;
  for (const { data } of rows) {
    if (off + data.byteLength > into.byteLength) throw new Error(`${what} is over ${into.byteLength} bytes`);
    into.set(new Uint8Array(data), off);
    off += data.byteLength;
  }
  if (off !== into.byteLength) throw new Error(`${what} is ${off} bytes, expected ${into.byteLength}`);
  return into;
}

/** The bytes of a typed array, without a copy. */
export function bytesOf(v: Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}
