/**
 * @module Values larger than one SQLite row (update deltas, the running sum's checkpoint, strategy
 * vectors), written as numbered chunks and read back into one buffer: once, for every table; and
 * stored updates' chunks in their encoding (float32, float16, or int8 with each chunk's scales
 * before its values). Pure: no storage of its own.
 */
import { type EncodedView, INT8_BLOCK, type UpdateEncoding } from '#protocol/encoding.ts';

/**
 * Stored updates are chunked finer than other values (64K parameters, 256 KiB): update-based
 * strategies read one chunk of every update at a time, so their memory is k × 256 KiB (25 MiB for 100).
 */
export const UPDATE_CHUNK_FLOATS = 65_536;

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

/** Bytes of a stored chunk of `n` parameters. */
export function chunkBytes(encoding: UpdateEncoding, n: number): number {
  if (encoding === 'float32') return n * 4;
  if (encoding === 'float16') return n * 2;
  return Math.ceil(n / INT8_BLOCK) * 4 + n;
}

/** Parameters [start, end) of an update as one stored chunk (int8: the chunk's scales, then its values). */
export function encodedChunk(u: EncodedView, start: number, end: number): ArrayBuffer {
  if (u.encoding !== 'int8') return u.data.slice(start, end).buffer as ArrayBuffer;
  const scales = u.scales.subarray(start / INT8_BLOCK, Math.ceil(end / INT8_BLOCK));
  const out = new Uint8Array(chunkBytes('int8', end - start));
  out.set(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
  out.set(new Uint8Array(u.data.buffer, u.data.byteOffset + start, end - start), scales.byteLength);
  return out.buffer;
}

/** A stored chunk of `n` parameters read as an encoded update of its own. */
export function chunkView(encoding: UpdateEncoding, data: ArrayBuffer, n: number): EncodedView {
  if (encoding === 'float32') return { encoding, length: n, data: new Float32Array(data) };
  if (encoding === 'float16') return { encoding, length: n, data: new Uint16Array(data) };
  const blocks = Math.ceil(n / INT8_BLOCK);
  return { encoding, length: n, scales: new Float32Array(data, 0, blocks), data: new Int8Array(data, blocks * 4, n) };
}

/** An update of `n` parameters to read stored chunks into. */
export function emptyUpdate(encoding: UpdateEncoding, n: number): EncodedView {
  if (encoding === 'float32') return { encoding, length: n, data: new Float32Array(n) };
  if (encoding === 'float16') return { encoding, length: n, data: new Uint16Array(n) };
  return { encoding, length: n, data: new Int8Array(n), scales: new Float32Array(Math.ceil(n / INT8_BLOCK)) };
}

/** Fills `into` from a stored update's chunks, in index order; each must be the size its place needs. */
export function readUpdate(rows: Iterable<{ data: ArrayBuffer }>, into: EncodedView, what: string): void {
  let start = 0;
  for (const { data } of rows) {
    const end = Math.min(start + UPDATE_CHUNK_FLOATS, into.length);
    if (start >= into.length || data.byteLength !== chunkBytes(into.encoding, end - start))
      throw new Error(`${what}: chunk at ${start} is ${data.byteLength} bytes`);
    const chunk = chunkView(into.encoding, data, end - start);
    if (into.encoding === 'int8' && chunk.encoding === 'int8') {
      into.data.set(chunk.data, start);
      into.scales.set(chunk.scales, start / INT8_BLOCK);
    } else (into.data as Float32Array | Uint16Array).set(chunk.data as Float32Array | Uint16Array, start);
    start = end;
  }
  if (start !== into.length) throw new Error(`${what} holds ${start} of ${into.length} parameters`);
}
