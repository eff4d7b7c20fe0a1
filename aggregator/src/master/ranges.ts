/**
 * @module Parameter-range shards, the pure part: a model too large for one object (more than
 * RANGED_ABOVE_PARAMS parameters) has its flat parameter vector split into ranges of R parameters,
 * each aggregated by its own Durable Object (`RangeAggregator`, named `<task>/range/<k>`); clients
 * send their updates in chunks, one per range (protocol/chunked.ts), and commit them at the master.
 *
 * A published version of such a task is one safetensors file assembled in R2 by a multipart
 * upload. R2 wants every part but the last of one size (at least 5 MiB), so the parts are the
 * file's bytes [jP, (j+1)P) with P = 4R, the bytes of one range: with D the header's length
 * (8-byte length and padded JSON), part j holds the last D bytes of range j−1 (range 0: the
 * header) and the first P − D of range j. Each range object writes its own part, given the
 * previous range's last D bytes (its "carry", a few KB); the last range's carry, if any, is a
 * short final part. No object holds more than its range. See docs/scale.md.
 */

import { CHUNK_TENSOR, type ChunkedUpload } from '#protocol/chunked.ts';
import type { ErrorCode } from '#protocol/codes.ts';
import { dataBytes, type EncodedView, EncodingError, type UpdateEncoding, viewUpdate } from '#protocol/encoding.ts';
import { UPDATE_META } from '#protocol/messages.ts';
import { decodeRawTensors, encodeHeader, WireFormatError } from '#protocol/safetensors.ts';

/** Tasks above this many parameters are split into ranges (`RANGED_ABOVE_PARAMS` overrides it). One object holds the float64 sum of the rest (8 bytes a parameter, 128 MB isolates). */
export const RANGED_ABOVE_PARAMS = 4_000_000;
/** Parameters per range (`RANGE_PARAMS` overrides it): 8 MiB of float32 (an R2 part), a 16 MiB float64 sum; the close's peak is a few times that. */
export const RANGE_PARAMS = 2_097_152;
/** Ranges are whole stored chunks (round-store's 65,536 parameters) and whole int8 blocks. */
export const RANGE_ALIGN = 65_536;
/** R2's smallest multipart part but the last: a range's float32 bytes must be at least this. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** The largest model a task may have: 1 GiB of float32, 128 ranges at the default R. */
export const MAX_RANGED_PARAMS = 268_435_456;
/** Range objects working on one close at a time: on Cloudflare each runs on its own thread; on one machine this bounds the memory. */
export const CLOSE_PARALLEL = 8;
/** Chunk bodies being received at once per range object (a bound on its memory). */
export const CHUNK_BUDGET_BYTES = 48 * 1024 * 1024;

/** How a task's parameters are split: R per range, and how many ranges. */
export interface RangeLayout {
  params: number;
  count: number;
}

/** The range size configured (`RANGE_PARAMS`), checked: a multiple of RANGE_ALIGN whose float32 bytes make a valid R2 part. */
export function rangeParams(raw: string | undefined): number {
  if (raw === undefined || raw === '') return RANGE_PARAMS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n % RANGE_ALIGN !== 0 || n * 4 < MIN_PART_BYTES)
    throw new Error(`RANGE_PARAMS must be a multiple of ${RANGE_ALIGN} of at least ${MIN_PART_BYTES / 4} parameters, not ${raw}`);
  return n;
}

/** The split of a model of `numParams` into ranges of `params`, or null when it fits one object. */
export function rangeLayout(numParams: number, rangedAbove: number, params: number): RangeLayout | null {
  if (numParams <= rangedAbove) return null;
  return { params, count: Math.ceil(numParams / params) };
}

/** Parameters [start, end) of range `index`. */
export function rangeBounds(layout: RangeLayout, numParams: number, index: number): { start: number; end: number } {
  const start = index * layout.params;
  return { start, end: Math.min(numParams, start + layout.params) };
}

/** What the assignment tells a client: one chunk per range. */
export function chunkedUpload(layout: RangeLayout): ChunkedUpload {
  return { chunkParams: layout.params, chunks: layout.count };
}

/** The Durable Object name of range `index` of a task. */
export function rangeName(taskId: string, index: number): string {
  return `${taskId}/range/${index}`;
}

/** The R2 key of version `version` of a ranged task (written by a multipart upload, so not content-addressed: the hash comes after). */
export function rangedKey(taskId: string, version: number): string {
  return `tasks/${taskId}/weights/v${version}.safetensors`;
}

/** The head of a ranged version's file: its safetensors header, for the task's float32 tensors. */
export function versionHeader(tensors: readonly { name: string; shape: number[] }[], metadata: Record<string, string>): Uint8Array<ArrayBuffer> {
  return encodeHeader(
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape })),
    metadata,
  );
}

/**
 * The multipart part a range writes: `prefix` (the header for range 0, else the previous range's
 * carry) then the first P − D bytes of its own float32 output; and its own carry, the bytes after
 * those (empty when the range is shorter than P − D, which only the last can be).
 */
export function partOf(prefix: Uint8Array, out: Uint8Array, partBytes: number, headBytes: number): { part: Uint8Array; carry: Uint8Array } {
  if (prefix.length > headBytes) throw new Error(`a part's prefix is ${prefix.length} bytes, over the header's ${headBytes}`);
  const take = Math.min(out.length, partBytes - headBytes);
  const part = new Uint8Array(prefix.length + take);
  part.set(prefix);
  part.set(out.subarray(0, take), prefix.length);
  return { part, carry: out.subarray(take) };
}

/** Why a task cannot be split into ranges, or null: everything that needs a whole update (or all of them) in one object. */
export function rangedMisfit(task: {
  numParams: number;
  asynchronous: boolean;
  changesUpdates: boolean;
  privacy: boolean;
  secureAggregation: boolean;
  shards: number;
}): string | null {
  const why = `a model of ${task.numParams} parameters is split into parameter ranges, each aggregated by its own object`;
  if (task.numParams > MAX_RANGED_PARAMS) return `the model has ${task.numParams} parameters; a task holds at most ${MAX_RANGED_PARAMS}`;
  if (task.asynchronous) return `${why}: FedBuff is not available for it`;
  if (task.changesUpdates) return `${why}: a strategy that scales whole updates (norm bounding) needs each update's norm in one place`;
  if (task.privacy) return `${why}: differential privacy clips by the whole update's norm, which no range object sees`;
  if (task.secureAggregation) return `${why}: secure aggregation unmasks one sum in one object`;
  if (task.shards > 1) return `${why}: its clients are not also sharded (shards must be 1)`;
  return null;
}

export type ValidChunk = { ok: true; chunk: EncodedView } | { ok: false; code: ErrorCode; message: string };

/** One chunk body checked against its place: a safetensors message of one `delta` tensor of the range's length in the task's encoding, for this base version and index. */
export function validateChunk(
  body: Uint8Array,
  want: { encoding: UpdateEncoding; length: number; baseVersion: number; index: number },
  firstNonFinite: (data: Float32Array) => number,
): ValidChunk {
  try {
    const { tensors, metadata } = decodeRawTensors(body, { maxTensors: 2, maxHeaderBytes: 64 * 1024 });
    const base = metadata[UPDATE_META.baseVersion];
    if (base === undefined || !/^\d+$/.test(base))
      return { ok: false, code: 'invalid_metadata', message: `metadata "${UPDATE_META.baseVersion}" must be the version number the update was trained from` };
    if (Number(base) !== want.baseVersion)
      return { ok: false, code: 'base_version_mismatch', message: `chunk was trained on version ${base}; this round's base version is ${want.baseVersion}` };
    if (metadata[UPDATE_META.chunk] !== String(want.index))
      return { ok: false, code: 'invalid_metadata', message: `metadata "${UPDATE_META.chunk}" must be this chunk's index, ${want.index}` };
    const chunk = viewUpdate(tensors, [{ name: CHUNK_TENSOR, shape: [want.length] }], want.encoding);
    if (chunk.encoding === 'float32') {
      const bad = firstNonFinite(chunk.data);
      if (bad >= 0) return { ok: false, code: 'non_finite', message: `non-finite value ${chunk.data[bad]} at index ${bad} of chunk ${want.index}` };
    }
    return { ok: true, chunk };
  } catch (e) {
    if (e instanceof WireFormatError || e instanceof EncodingError) return { ok: false, code: e.code, message: `chunk ${want.index}: ${e.message}` };
    throw e;
  }
}

/** The largest chunk body of a range of `length` parameters: its data, a small header and alignment. */
export function maxChunkBytes(encoding: UpdateEncoding, length: number): number {
  return dataBytes(encoding, length) + 1024;
}
