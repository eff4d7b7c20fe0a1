/**
 * @module Model version blobs in R2: content-addressed, immutable, safetensors.
 */

import { MODEL_META } from '#protocol/messages.ts';
import { encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import type { TensorSpec } from '../master/task-spec.ts';

export interface StoredBlob {
  key: string;
  contentHash: string;
  byteLength: number;
}

export async function sha256Hex(data: ArrayBuffer | ArrayBufferView): Promise<string> {
  return hexOf(new Uint8Array(await crypto.subtle.digest('SHA-256', data)));
}

/** Lower-case hex of bytes (digests, seeds). */
export function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function weightsKey(taskId: string, contentHash: string): string {
  return `tasks/${taskId}/weights/${contentHash}.safetensors`;
}

/**
 * Writes a version's weights under a key derived from their SHA-256. Writing the same bytes
 * twice is harmless (same key, same content), which makes publishing retry-safe.
 */
export async function putWeights(bucket: R2Bucket, taskId: string, version: number, tensors: readonly TensorSpec[], flat: Float32Array): Promise<StoredBlob> {
  const bytes = encodeTensors(splitFlat(tensors, flat), { [MODEL_META.task]: taskId, [MODEL_META.version]: String(version) });
  return putBlob(bucket, taskId, bytes);
}

export async function putBlob(bucket: R2Bucket, taskId: string, bytes: Uint8Array): Promise<StoredBlob> {
  const contentHash = await sha256Hex(bytes);
  const key = weightsKey(taskId, contentHash);
  await bucket.put(key, bytes, { sha256: contentHash, httpMetadata: { contentType: 'application/octet-stream' } });
  return { key, contentHash, byteLength: bytes.byteLength };
}
