/**
 * @module Compressed update encodings, chosen per task (`updateEncoding`): what the SDK sends in
 * place of float32 Δ, and how the aggregator reads it without a float32 copy of the whole update.
 *
 * - `float32` (default): each tensor as F32, 4 bytes a parameter.
 * - `float16`: each tensor as F16 (IEEE binary16), rounded to nearest even, 2 bytes a parameter
 *   (2× fewer). Values beyond float16's range saturate at ±65504 (Δs that large are far outside
 *   what training produces; the SDK reports how many it saturated).
 * - `int8`: each tensor as I8, plus one F32 tensor `#scales` (a name no model tensor can have) with
 *   one scale per block of {@link INT8_BLOCK} parameters of the flat update (the tensors laid end
 *   to end in the task's order): s = max |Δᵢ| / 127 over the block, qᵢ = ⌊Δᵢ/s + u⌋ with u uniform
 *   in [0, 1) (stochastic rounding: E[qᵢ·s] = Δᵢ, unbiased), clamped to ±127. 1 + 4/256 bytes a
 *   parameter (3.94× fewer). The aggregator reads qᵢ·s rounded to float32.
 *
 * Still safetensors: Python's `safetensors.numpy.load_file` reads every encoding. Pure: imports
 * only the wire format.
 */
import { elementCount, type RawTensor, WireFormatError } from './safetensors.ts';

/**
 * How a task's clients encode their updates (the task's `updateEncoding`; the SDK follows the
 * assignment by itself).
 *
 * @example
 * await admin.createTask(model, { name: 'keyboard', updateEncoding: 'int8' }); // ~4× fewer bytes up
 */
export type UpdateEncoding = 'float32' | 'float16' | 'int8';
export const UPDATE_ENCODINGS: readonly UpdateEncoding[] = ['float32', 'float16', 'int8'];

/** Parameters per int8 scale block (a divisor of the aggregator's 65,536-parameter storage chunk). */
export const INT8_BLOCK = 256;
/** The int8 encoding's scales tensor: '#' is outside the characters a model tensor name may use. */
export const SCALES_TENSOR = '#scales';

/** Bytes of an update's tensor data (without the safetensors header) for `numParams` parameters. */
export function dataBytes(encoding: UpdateEncoding, numParams: number): number {
  if (encoding === 'float32') return numParams * 4;
  if (encoding === 'float16') return numParams * 2;
  return numParams + Math.ceil(numParams / INT8_BLOCK) * 4;
}

// ---------------------------------------------------------------------------------------------
// float16

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bits nearest to `x` (ties to even); beyond ±65504 it saturates at ±65504. */
export function toHalf(x: number): number {
  f32[0] = x;
  return halfOfBits(u32[0]!);
}

/** toHalf of the float32 with these bits. */
function halfOfBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return man ? 0x7e00 : sign | 0x7bff; // NaN stays NaN (the aggregator refuses it); ±Inf saturates
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7bff;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    // subnormal: the implicit 1 joins the mantissa, shifted right by 14 − e, rounded to nearest even
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  const rounded = half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0);
  return sign | (rounded >= 0x7c00 ? 0x7bff : rounded); // rounding up past 65504 saturates too
}

let halves: Float32Array | undefined;

/** Every float16 bit pattern's float32 value (exact; 256 KiB, built on first use). */
export function halfTable(): Float32Array {
  if (halves) return halves;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m ? Number.NaN : sign * Number.POSITIVE_INFINITY) : sign * (1024 + m) * 2 ** (e - 25);
  }
  halves = t;
  return t;
}

/** Whether the float16 bits are NaN or ±Inf (exponent all ones). */
export function halfIsFinite(h: number): boolean {
  return (h & 0x7c00) !== 0x7c00;
}

/**
 * Index of the first NaN or ±Inf in float16 bits, or -1. Two halves per 32-bit word: a half's
 * exponent is all ones exactly when (exponent bits + 0x0400) carries into its sign position, and
 * neither half's sum spills into the other; four words per step.
 */
export function firstNonFiniteHalf(h: Uint16Array): number {
  const n = h.length;
  let i = 0;
  if (h.byteOffset % 4 === 0) {
    const w = new Uint32Array(h.buffer, h.byteOffset, n >>> 1);
    const end4 = w.length - (w.length % 4);
    let j = 0;
    for (; j < end4; j += 4) {
      const x =
        (((w[j]! & 0x7c007c00) + 0x04000400) |
          ((w[j + 1]! & 0x7c007c00) + 0x04000400) |
          ((w[j + 2]! & 0x7c007c00) + 0x04000400) |
          ((w[j + 3]! & 0x7c007c00) + 0x04000400)) &
        0x80008000;
      if (x !== 0) break;
    }
    i = j * 2;
  }
  for (; i < n; i++) if (!halfIsFinite(h[i]!)) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// int8

/** Uniforms in [0, 1) for stochastic rounding. */
export type Uniforms = () => number;

/** Uniforms from `crypto.getRandomValues`, 16,384 words a call. */
export function cryptoUniforms(): Uniforms {
  const words = new Uint32Array(16_384);
  let i = words.length;
  return () => {
    if (i === words.length) {
      crypto.getRandomValues(words);
      i = 0;
    }
    return words[i++]! / 2 ** 32;
  };
}

/** The int8 encoding of a flat update: q and one scale per block of INT8_BLOCK. */
export function quantizeInt8(flat: Float32Array, uniform: Uniforms = cryptoUniforms()): { q: Int8Array; scales: Float32Array } {
  const n = flat.length;
  const q = new Int8Array(n);
  const scales = new Float32Array(Math.ceil(n / INT8_BLOCK));
  for (let b = 0; b < scales.length; b++) {
    const start = b * INT8_BLOCK;
    const end = Math.min(start + INT8_BLOCK, n);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(flat[i]!));
    const s = Math.fround(max / 127);
    scales[b] = s;
    if (s === 0) continue;
    for (let i = start; i < end; i++) q[i] = Math.max(-127, Math.min(127, Math.floor(flat[i]! / s + uniform())));
  }
  return { q, scales };
}

// ---------------------------------------------------------------------------------------------
// Messages

export interface EncodeResult {
  tensors: RawTensor[];
  /** float16: values beyond ±65504 that were saturated. */
  saturated: number;
}

/**
 * The tensors of an update of `flat` (the model's tensors end to end, in `specs` order) in
 * `encoding`, ready for encodeRawTensors.
 *
 * @example
 * const { tensors } = encodeUpdate(specs, delta, 'int8');
 * const body = encodeRawTensors(tensors, metadata);
 */
export function encodeUpdate(
  specs: readonly { name: string; shape: readonly number[] }[],
  flat: Float32Array,
  encoding: UpdateEncoding,
  uniform?: Uniforms,
): EncodeResult {
  const parts = (bytesPer: number, data: ArrayBufferView, dtype: RawTensor['dtype']): RawTensor[] => {
    let pos = 0;
    return specs.map((t) => {
      const n = elementCount(t.shape);
      const bytes = new Uint8Array(data.buffer, data.byteOffset + pos * bytesPer, n * bytesPer);
      pos += n;
      return { name: t.name, dtype, shape: [...t.shape], bytes };
    });
  };
  if (encoding === 'float32') return { tensors: parts(4, flat, 'F32'), saturated: 0 };
  if (encoding === 'float16') {
    const h = new Uint16Array(flat.length);
    const bits = new Uint32Array(flat.buffer, flat.byteOffset, flat.length);
    let saturated = 0;
    for (let i = 0; i < flat.length; i++) {
      h[i] = halfOfBits(bits[i]!);
      if (Math.abs(flat[i]!) > 65504) saturated++;
    }
    return { tensors: parts(2, h, 'F16'), saturated };
  }
  const { q, scales } = quantizeInt8(flat, uniform);
  const scaleBytes = new Uint8Array(scales.buffer);
  // The scales first: their float32 data stays 4-byte aligned in the message (no copy to read them).
  return { tensors: [{ name: SCALES_TENSOR, dtype: 'F32', shape: [scales.length], bytes: scaleBytes }, ...parts(1, q, 'I8')], saturated: 0 };
}

/**
 * A decoded update as the aggregator reads it: views over the message (a copy only when its
 * tensors are not laid out in the task's order, or are misaligned), never a float32 copy.
 */
export type EncodedView =
  | { encoding: 'float32'; length: number; data: Float32Array }
  | { encoding: 'float16'; length: number; data: Uint16Array }
  | { encoding: 'int8'; length: number; data: Int8Array; scales: Float32Array };

/**
 * The flat update of `tensors` (a decoded message's, scales included) for a task of `specs` in
 * `encoding`. Throws WireFormatError `tensor_mismatch` for a missing or extra tensor, a wrong shape
 * or a dtype other than the encoding's, and `non_finite` for a NaN or infinite value or scale.
 */
export function viewUpdate(tensors: readonly RawTensor[], specs: readonly { name: string; shape: readonly number[] }[], encoding: UpdateEncoding): EncodedView {
  const dtype = encoding === 'float32' ? 'F32' : encoding === 'float16' ? 'F16' : 'I8';
  const bytesPer = encoding === 'float32' ? 4 : encoding === 'float16' ? 2 : 1;
  const expectTensors = specs.length + (encoding === 'int8' ? 1 : 0);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const data = tensors.filter((t) => t.name !== SCALES_TENSOR);
  let length = 0;
  let inOrder = true;
  for (const [i, want] of specs.entries()) {
    const got = byName.get(want.name);
    if (!got) throw mismatch(`missing tensor "${want.name}"`);
    if (got.shape.length !== want.shape.length || got.shape.some((d, j) => d !== want.shape[j]))
      throw mismatch(`tensor "${want.name}" has shape [${got.shape.join(',')}], expected [${want.shape.join(',')}]`);
    if (got.dtype !== dtype) throw mismatch(`tensor "${want.name}" is ${got.dtype}; this task takes ${encoding} updates (${dtype})`);
    if (data[i] !== got) inOrder = false;
    length += elementCount(want.shape);
  }
  // Every model tensor is there, with its shape and dtype: anything more is an extra tensor.
  if (tensors.length !== expectTensors)
    throw mismatch(
      `expected ${expectTensors} tensors, got ${tensors.length}${encoding === 'int8' ? ` (an int8 update: the model's ${specs.length} and "${SCALES_TENSOR}")` : ''}`,
    );
  const bytes = flatBytes(specs, byName, inOrder, length * bytesPer);
  if (encoding === 'float32') return { encoding, length, data: aligned(bytes, 4, (b) => new Float32Array(b.buffer, b.byteOffset, length)) };
  if (encoding === 'float16') {
    const data = aligned(bytes, 2, (b) => new Uint16Array(b.buffer, b.byteOffset, length));
    const bad = firstNonFiniteHalf(data);
    if (bad >= 0) throw nonFinite(`non-finite float16 value at flat index ${bad}`);
    return { encoding, length, data };
  }
  const s = byName.get(SCALES_TENSOR);
  const blocks = Math.ceil(length / INT8_BLOCK);
  if (s?.dtype !== 'F32' || s.shape.length !== 1 || s.shape[0] !== blocks)
    throw mismatch(`an int8 update needs the F32 tensor "${SCALES_TENSOR}" of shape [${blocks}] (one scale per ${INT8_BLOCK} parameters)`);
  const scales = aligned(s.bytes, 4, (b) => new Float32Array(b.buffer, b.byteOffset, blocks));
  for (let b = 0; b < blocks; b++)
    if (!(Number.isFinite(scales[b]!) && scales[b]! >= 0)) throw nonFinite(`int8 scale ${scales[b]} of block ${b} is not a finite non-negative number`);
  return { encoding, length, data: new Int8Array(bytes.buffer, bytes.byteOffset, length), scales };
}

/** Parameters [start, end) of an encoded update as float32 values, into `out` (for paths that need floats). */
export function decodeRange(u: EncodedView, start: number, end: number, out: Float32Array = new Float32Array(end - start)): Float32Array {
  if (u.encoding === 'float32') out.set(u.data.subarray(start, end));
  else if (u.encoding === 'float16') {
    const t = halfTable();
    for (let i = start; i < end; i++) out[i - start] = t[u.data[i]!]!;
  } else {
    for (let i = start; i < end; i++) out[i - start] = Math.fround(u.data[i]! * u.scales[Math.floor(i / INT8_BLOCK)]!);
  }
  return out;
}

function flatBytes(specs: readonly { name: string; shape: readonly number[] }[], byName: Map<string, RawTensor>, inOrder: boolean, total: number): Uint8Array {
  const parts = specs.map((t) => byName.get(t.name)!.bytes);
  const first = parts[0];
  if (!first) return new Uint8Array(0);
  const last = parts[parts.length - 1]!;
  // Contiguous in the task's order: the data section itself is the flat update.
  if (inOrder && first.buffer === last.buffer && last.byteOffset + last.length - first.byteOffset === total)
    return new Uint8Array(first.buffer, first.byteOffset, total);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function aligned<T>(bytes: Uint8Array, align: number, view: (b: Uint8Array) => T): T {
  return view(bytes.byteOffset % align === 0 ? bytes : bytes.slice());
}

function mismatch(message: string): WireFormatError {
  return new WireFormatError('tensor_mismatch', message);
}

function nonFinite(message: string): EncodingError {
  return new EncodingError(message);
}

/** A NaN or infinite value in an encoded update (`non_finite`). */
export class EncodingError extends Error {
  readonly code = 'non_finite' as const;
  override readonly name = 'EncodingError';
}
