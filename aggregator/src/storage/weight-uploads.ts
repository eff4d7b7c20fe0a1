/**
 * @module Initial weights uploaded in chunks, for models too large for one request: the operator
 * opens an upload (its model's parameter count), sends each chunk's raw float32 bytes, then
 * creates the task from it (`initialWeightsUpload`). The chunks wait in R2 under `uploads/<id>/`
 * until then; task creation reads them one at a time (a ranged task's version 0 is assembled by
 * its range objects from them, exactly as a published version), then deletes them.
 */
import { rangeBounds } from '../master/ranges.ts';

export interface WeightUpload {
  uploadId: string;
  numParams: number;
  chunkParams: number;
  chunks: number;
  createdAt: string;
}

export function uploadChunkKey(uploadId: string, index: number): string {
  return `uploads/${uploadId}/chunk-${index}`;
}

function metaKey(uploadId: string): string {
  return `uploads/${uploadId}/upload.json`;
}

/** Opens an upload of `numParams` parameters in chunks of `chunkParams`. */
export async function openUpload(bucket: R2Bucket, numParams: number, chunkParams: number): Promise<WeightUpload> {
  const upload: WeightUpload = {
    uploadId: crypto.randomUUID(),
    numParams,
    chunkParams,
    chunks: Math.ceil(numParams / chunkParams),
    createdAt: new Date().toISOString(),
  };
  await bucket.put(metaKey(upload.uploadId), JSON.stringify(upload), { httpMetadata: { contentType: 'application/json' } });
  return upload;
}

/** The upload `uploadId`, or null. */
export async function getUpload(bucket: R2Bucket, uploadId: string): Promise<WeightUpload | null> {
  if (!/^[0-9a-f-]{36}$/.test(uploadId)) return null;
  const object = await bucket.get(metaKey(uploadId));
  return object ? ((await object.json()) as WeightUpload) : null;
}

/** Parameters [start, end) of chunk `index` of an upload. */
export function uploadBounds(upload: WeightUpload, index: number): { start: number; end: number } {
  return rangeBounds({ params: upload.chunkParams, count: upload.chunks }, upload.numParams, index);
}

/** The chunks of an upload that are not stored (at their full size), in order. */
export async function missingChunks(bucket: R2Bucket, upload: WeightUpload): Promise<number[]> {
  const missing: number[] = [];
  for (let k = 0; k < upload.chunks; k++) {
    const { start, end } = uploadBounds(upload, k);
    const head = await bucket.head(uploadChunkKey(upload.uploadId, k));
    if (head?.size !== (end - start) * 4) missing.push(k);
  }
  return missing;
}

/** The whole model of a complete upload, for one that fits one object. */
export async function readUpload(bucket: R2Bucket, upload: WeightUpload): Promise<Float32Array> {
  const flat = new Float32Array(upload.numParams);
  for (let k = 0; k < upload.chunks; k++) {
    const { start } = uploadBounds(upload, k);
    const object = await bucket.get(uploadChunkKey(upload.uploadId, k));
    if (!object) throw new Error(`chunk ${k} of upload ${upload.uploadId} missing`);
    flat.set(new Float32Array(await object.arrayBuffer()), start);
  }
  return flat;
}

/** Deletes an upload's objects (once the task it made holds them as its version 0). */
export async function deleteUpload(bucket: R2Bucket, upload: WeightUpload): Promise<void> {
  const keys = Array.from({ length: upload.chunks }, (_, k) => uploadChunkKey(upload.uploadId, k));
  for (let i = 0; i < keys.length; i += 1000) await bucket.delete(keys.slice(i, i + 1000));
  await bucket.delete(metaKey(upload.uploadId));
}
