/**
 * @module Chunked updates, for models too large for one request (a task's parameters split into
 * ranges, each aggregated by its own object): the client sends its flat update Δ in chunks, one per
 * parameter range, each a safetensors message of its own, then commits the update.
 *
 * - Chunk k holds parameters [k·chunkParams, min((k+1)·chunkParams, numParams)) of the flat update
 *   (the model's tensors end to end, in the task's order) as one tensor {@link CHUNK_TENSOR} of
 *   that length, in the task's update encoding (int8: plus `#scales` for the chunk's blocks), with
 *   metadata `fedge.base_version` and `fedge.chunk` = k. `PUT …/update/chunks/{k}`.
 * - A chunk is stored once: sending it again with the same bytes answers the same (a retry after a
 *   dropped connection), with other bytes `duplicate_conflict`. The chunks may go in any order and
 *   in parallel.
 * - The commit (`POST …/update/commit`) names every chunk's SHA-256 with the update's example
 *   count and metrics; it is the update's acceptance, acknowledged once durable and exactly once,
 *   like a whole update's. A chunk that is missing is `update_incomplete`.
 *
 * Pure: imports only the wire format and the encodings.
 */
import { encodeUpdate, type Uniforms, type UpdateEncoding } from './encoding.ts';
import { type ChunkedUpload, UPDATE_META } from './messages.ts';
import { encodeRawTensors } from './safetensors.ts';

/** The one tensor of a chunk: the slice of the flat update. */
export const CHUNK_TENSOR = 'delta';

export type { ChunkedUpload } from './messages.ts';

/** The commit of a chunked update: what the whole update's metadata says, and the chunks by SHA-256. */
export interface ChunkCommit {
  baseVersion: number;
  numExamples: number;
  metrics?: Record<string, number> | undefined;
  /** SHA-256 (hex) of each chunk's body, in chunk order. */
  chunks: string[];
}

/** The answer to a stored chunk. */
export interface ChunkAck {
  round: number;
  index: number;
  bodySha256: string;
  /** True when this chunk had already been stored with these bytes (a retry). */
  replayed: boolean;
}

/** Parameters [start, end) of chunk `index` of an update of `numParams`. */
export function chunkBounds(layout: ChunkedUpload, numParams: number, index: number): { start: number; end: number } {
  const start = index * layout.chunkParams;
  return { start, end: Math.min(numParams, start + layout.chunkParams) };
}

/** The body of one chunk: `slice` (the chunk's parameters of the flat update) in `encoding`. */
export function encodeChunk(
  slice: Float32Array,
  encoding: UpdateEncoding,
  meta: { baseVersion: number; index: number },
  uniform?: Uniforms,
): Uint8Array<ArrayBuffer> {
  const { tensors } = encodeUpdate([{ name: CHUNK_TENSOR, shape: [slice.length] }], slice, encoding, uniform);
  return encodeRawTensors(tensors, { [UPDATE_META.baseVersion]: String(meta.baseVersion), [UPDATE_META.chunk]: String(meta.index) });
}
