/**
 * @module Validates one decoded update against its task and round, before any of it is summed.
 *
 * Pure: bytes and plain data in, a flat float32 vector (zero-copy when the sender used the
 * task's tensor order) or a stable error code out. Nothing here touches storage, so a rejected
 * update cannot change the running sum, the ledger or the versions.
 */
import type { ErrorCode } from '#protocol/codes.ts';
import { type EncodedView, EncodingError, viewUpdate } from '#protocol/encoding.ts';
import { MAX_METRICS, METRIC_NAME_PATTERN, UPDATE_META } from '#protocol/messages.ts';
import { decodeRawTensors, type RawTensor, WireFormatError } from '#protocol/safetensors.ts';
import type { TaskSpec } from './task-spec.ts';

export interface ValidUpdate {
  ok: true;
  /** Δ = trained − base, the task's tensors concatenated in spec order, in the task's encoding (views over the body when it is laid out in that order). */
  update: EncodedView;
  numExamples: number;
  metrics: Record<string, number> | null;
  /** Metadata `fedge.unclipped` (DP tasks that clip on the client): whether the norm was within the clip norm before clipping; null when absent. */
  unclipped: boolean | null;
}

export interface InvalidUpdate {
  ok: false;
  code: ErrorCode;
  message: string;
}

/** Finds the first NaN or ±Infinity; injected so the Worker can use its Wasm kernel. */
export type FiniteCheck = (data: Float32Array) => number;

export function validateUpdate(body: ArrayBuffer | Uint8Array, spec: TaskSpec, baseVersion: number, firstNonFinite: FiniteCheck): ValidUpdate | InvalidUpdate {
  let decoded: { tensors: RawTensor[]; metadata: Record<string, string> };
  try {
    decoded = decodeRawTensors(body, { maxTensors: spec.tensors.length + 1, maxHeaderBytes: 1024 * 1024 });
  } catch (e) {
    if (e instanceof WireFormatError) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
  const { tensors, metadata } = decoded;

  const base = metadata[UPDATE_META.baseVersion];
  if (base === undefined || !/^\d+$/.test(base))
    return invalid('invalid_metadata', `metadata "${UPDATE_META.baseVersion}" must be the version number the update was trained from`);
  if (Number(base) !== baseVersion)
    return invalid('base_version_mismatch', `update was trained on version ${base}; this round's base version is ${baseVersion}`);

  const rawCount = metadata[UPDATE_META.numExamples];
  const numExamples = rawCount !== undefined && /^\d+$/.test(rawCount) ? Number(rawCount) : NaN;
  if (!Number.isSafeInteger(numExamples) || numExamples <= 0) {
    return invalid('invalid_example_count', `metadata "${UPDATE_META.numExamples}" must be a positive integer, got ${JSON.stringify(rawCount ?? null)}`);
  }
  if (numExamples > spec.rules.maxExamplesPerClient) {
    return invalid('invalid_example_count', `example count ${numExamples} exceeds the task's cap of ${spec.rules.maxExamplesPerClient}`);
  }

  const metrics = parseMetrics(metadata[UPDATE_META.metrics]);
  if (metrics === undefined) {
    return invalid(
      'invalid_metadata',
      `metadata "${UPDATE_META.metrics}" must be a JSON object of at most ${MAX_METRICS} finite numbers, named like ${METRIC_NAME_PATTERN}`,
    );
  }

  const rawUnclipped = metadata[UPDATE_META.unclipped];
  if (rawUnclipped !== undefined && rawUnclipped !== '0' && rawUnclipped !== '1')
    return invalid('invalid_metadata', `metadata "${UPDATE_META.unclipped}" must be 1 or 0, got ${JSON.stringify(rawUnclipped)}`);
  const unclipped = rawUnclipped === undefined ? null : rawUnclipped === '1';

  let update: EncodedView;
  try {
    update = viewUpdate(tensors, spec.tensors, spec.updateEncoding ?? 'float32');
  } catch (e) {
    if (e instanceof WireFormatError || e instanceof EncodingError) return invalid(e.code, e.message);
    throw e;
  }
  if (update.encoding === 'float32') {
    const bad = firstNonFinite(update.data);
    if (bad >= 0) return invalid('non_finite', `non-finite value ${update.data[bad]} at flat index ${bad} (${locate(spec, bad)})`);
  }
  return { ok: true, update, numExamples, metrics, unclipped };
}

function parseMetrics(raw: string | undefined): Record<string, number> | null | undefined {
  if (raw === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_METRICS) return undefined;
  const out: Record<string, number> = Object.create(null);
  for (const [k, x] of entries) {
    if (!METRIC_NAME_PATTERN.test(k) || typeof x !== 'number' || !Number.isFinite(x)) return undefined;
    out[k] = x;
  }
  return out;
}

function locate(spec: TaskSpec, flatIndex: number): string {
  let start = 0;
  for (const t of spec.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (flatIndex < start + n) return `tensor "${t.name}" element ${flatIndex - start}`;
    start += n;
  }
  return 'out of range';
}

function invalid(code: ErrorCode, message: string): InvalidUpdate {
  return { ok: false, code, message };
}
