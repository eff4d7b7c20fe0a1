/**
 * @module The fedge wire format: model weights and model updates as safetensors.
 *
 * Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON header `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__: {..} }`,
 * then the raw little-endian tensor bytes. The header is padded with spaces so the data section
 * starts on an 8-byte boundary, which lets the decoder return `Float32Array` views over the
 * received buffer without copying. Python tools (`safetensors.numpy.load_file`) read the same bytes.
 *
 * This module imports nothing but the platform and the protocol's error class: the aggregator bundles
 * it, the SDK ships it.
 */
import { FedgeError } from './errors.ts';

/** Tensor dtypes on the wire: float32 (weights, and updates by default), and the compressed update encodings' float16 and int8 (encoding.ts). */
export type WireDType = 'F32' | 'F16' | 'I8';

const BYTES_PER_ELEMENT: Record<WireDType, number> = { F32: 4, F16: 2, I8: 1 };

/** A tensor of any wire dtype as raw little-endian bytes (a view into the message when decoded). */
export interface RawTensor {
  name: string;
  dtype: WireDType;
  shape: number[];
  bytes: Uint8Array;
}

export interface WireTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface DecodedMessage {
  /** Tensors in the order of their data offsets. */
  tensors: WireTensor[];
  /** The `__metadata__` string map (empty when absent); prototype-free, so any key is plain data. */
  metadata: Record<string, string>;
}

export interface DecodeOptions {
  /** Refuse headers longer than this many bytes. Default 16 MiB. */
  maxHeaderBytes?: number;
  /** Refuse more tensors than this. Default 10,000. */
  maxTensors?: number;
}

/**
 * Why a message could not be encoded or decoded: `malformed_update` (not a well-formed safetensors
 * message) or `tensor_mismatch` (a tensor that breaks the format's rules: duplicate name, wrong
 * value count, a dtype other than F32).
 *
 * @example
 * try {
 *   await client.getWeights(version);
 * } catch (e) {
 *   if (e instanceof WireFormatError) console.error(`not a well-formed weights file (${e.code}): ${e.message}`);
 *   else throw e;
 * }
 */
export class WireFormatError extends FedgeError {
  override readonly name: string = 'WireFormatError';
  declare readonly code: 'malformed_update' | 'tensor_mismatch';
  constructor(code: 'malformed_update' | 'tensor_mismatch', message: string) {
    super(code, message);
  }
}

const HEADER_ALIGN = 8;
let encoder: TextEncoder | undefined;
let decoder: TextDecoder | undefined;

/**
 * The UTF-8 codecs of the JSON header, made on first use so that importing the module never fails
 * where the platform lacks one (React Native's Hermes has had `TextEncoder` since 0.74 but no
 * `TextDecoder`): the call that needs it throws a coded `missing_platform_api` instead.
 */
function utf8Encoder(): TextEncoder {
  if (typeof TextEncoder !== 'function') throw missingCodec('TextEncoder');
  encoder ??= new TextEncoder();
  return encoder;
}
function utf8Decoder(): TextDecoder {
  if (typeof TextDecoder !== 'function') throw missingCodec('TextDecoder');
  decoder ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  return decoder;
}
function missingCodec(name: string): FedgeError {
  return new FedgeError(
    'missing_platform_api',
    `${name} is needed to read and write safetensors headers and this platform has none: in React Native, install a polyfill such as fast-text-encoding (import 'fast-text-encoding' before the SDK)`,
  );
}

/**
 * Encodes tensors (and an optional string metadata map) as one safetensors message.
 *
 * @example
 * const bytes = encodeTensors([{ name: 'dense/kernel', shape: [2, 2], data: new Float32Array(4) }], { round: '3' });
 */
export function encodeTensors(tensors: readonly WireTensor[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  return encodeRawTensors(
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })),
    metadata,
  );
}

/**
 * Encodes tensors of any wire dtype, given as raw little-endian bytes, as one safetensors message.
 *
 * @example
 * const bytes = encodeRawTensors([{ name: 'w', dtype: 'I8', shape: [4], bytes: Uint8Array.of(1, 2, 3, 4) }]);
 */
export function encodeRawTensors(tensors: readonly RawTensor[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const header = encodeHeader(tensors, metadata, (t) => {
    const size = elementCount(t.shape) * BYTES_PER_ELEMENT[t.dtype];
    if (size !== t.bytes.length) {
      throw new WireFormatError(
        'tensor_mismatch',
        `tensor "${t.name}": shape [${t.shape.join(',')}] needs ${size / BYTES_PER_ELEMENT[t.dtype]} values, got ${t.bytes.length / BYTES_PER_ELEMENT[t.dtype]}`,
      );
    }
  });
  const dataBytes = tensors.reduce((a, t) => a + t.bytes.length, 0);
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header);
  let pos = header.length;
  for (const t of tensors) {
    out.set(t.bytes, pos);
    pos += t.bytes.length;
  }
  return out;
}

/**
 * The first bytes of a safetensors message of these tensors (in this order), up to where their
 * data starts: the 8-byte length and the JSON header padded with spaces to an 8-byte boundary.
 * For a file whose data is written elsewhere (a large model version assembled in parts).
 *
 * @example
 * const head = encodeHeader([{ name: 'w', dtype: 'F32', shape: [1_000_000] }]); // then 4,000,000 data bytes
 */
export function encodeHeader(
  tensors: readonly Pick<RawTensor, 'name' | 'dtype' | 'shape'>[],
  metadata?: Record<string, string>,
  check?: (t: RawTensor) => void,
): Uint8Array<ArrayBuffer> {
  // Prototype-free: a tensor named `constructor` or `__proto__` is an own key like any other.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = Object.assign(Object.create(null), metadata);
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name))
      throw new WireFormatError('tensor_mismatch', `duplicate or reserved tensor name "${t.name}"`);
    check?.(t as RawTensor);
    const size = elementCount(t.shape) * BYTES_PER_ELEMENT[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = utf8Encoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / HEADER_ALIGN) * HEADER_ALIGN - 8;
  const out = new Uint8Array(8 + padded);
  const view = new DataView(out.buffer);
  view.setUint32(0, padded, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  return out;
}

/**
 * Decodes a safetensors message of float32 tensors. Float32 tensors are zero-copy views when the
 * data is 4-byte aligned in memory (always, for messages written by {@link encodeTensors} into a
 * fresh buffer). Any malformed input raises {@link WireFormatError} (a dtype other than F32 is
 * `tensor_mismatch`); it never throws anything else (but a coded `missing_platform_api` where the
 * platform has no `TextDecoder`).
 */
export function decodeTensors(input: ArrayBuffer | Uint8Array, options: DecodeOptions = {}): DecodedMessage {
  const { tensors, metadata } = decodeRawTensors(input, options);
  for (const t of tensors) {
    if (t.dtype !== 'F32') throw new WireFormatError('tensor_mismatch', `tensor "${t.name}" has dtype ${t.dtype}; only F32 is accepted`);
  }
  return { tensors: tensors.map((t) => ({ name: t.name, shape: t.shape, data: f32View(t.bytes) })), metadata };
}

/**
 * Decodes a safetensors message whose tensors may be F32, F16 or I8: each as a view of its raw
 * bytes, in the order of their data offsets. Malformed input raises {@link WireFormatError}; an
 * unknown dtype is `tensor_mismatch`.
 */
export function decodeRawTensors(input: ArrayBuffer | Uint8Array, options: DecodeOptions = {}): { tensors: RawTensor[]; metadata: Record<string, string> } {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const maxHeader = options.maxHeaderBytes ?? 16 * 1024 * 1024;
  const maxTensors = options.maxTensors ?? 10_000;
  if (bytes.length < 8) throw malformed(`message is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi !== 0 || lo > maxHeader) throw malformed(`header length ${hi * 2 ** 32 + lo} exceeds ${maxHeader} bytes`);
  if (8 + lo > bytes.length) throw malformed(`truncated: header needs ${lo} bytes, ${bytes.length - 8} present`);
  let header: unknown;
  const utf8 = utf8Decoder();
  try {
    header = JSON.parse(utf8.decode(bytes.subarray(8, 8 + lo)));
  } catch {
    throw malformed('header is not valid UTF-8 JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw malformed('header is not a JSON object');

  const dataStart = 8 + lo;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = Object.create(null);
  const entries: { name: string; dtype: WireDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw malformed(`__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (entries.length >= maxTensors) throw malformed(`more than ${maxTensors} tensors`);
    entries.push(parseEntry(name, raw));
  }
  // By offset; an empty tensor before a non-empty one at the same offset (found by fuzzing: a JSON
  // object lists integer-like names such as "0" first, so header order is not data order).
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of entries) {
    if (e.begin !== expected) throw malformed(`tensor "${e.name}" starts at ${e.begin}, expected ${expected} (gap or overlap)`);
    expected = e.end;
  }
  if (expected !== dataLength) {
    throw malformed(
      expected > dataLength
        ? `truncated: tensors need ${expected} data bytes, ${dataLength} present`
        : `${dataLength - expected} trailing bytes after the last tensor`,
    );
  }
  const tensors = entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, bytes: bytes.subarray(dataStart + e.begin, dataStart + e.end) }));
  return { tensors, metadata };
}

function parseEntry(name: string, raw: unknown): { name: string; dtype: WireDType; shape: number[]; begin: number; end: number } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed(`tensor "${name}" entry is not an object`);
  const own = (key: string): unknown => (Object.hasOwn(raw, key) ? (raw as Record<string, unknown>)[key] : undefined);
  const [dtype, shape, offsets] = [own('dtype'), own('shape'), own('data_offsets')];
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'I8') {
    throw new WireFormatError('tensor_mismatch', `tensor "${name}" has dtype ${JSON.stringify(dtype)}; only F32, F16 and I8 are read`);
  }
  if (!Array.isArray(shape) || shape.length > 8 || !shape.every(isSize)) throw malformed(`tensor "${name}" has an invalid shape`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) throw malformed(`tensor "${name}" has invalid data_offsets`);
  const [begin, end] = offsets as [number, number];
  const count = elementCount(shape as number[]);
  if (end < begin || end - begin !== count * BYTES_PER_ELEMENT[dtype]) {
    throw malformed(`tensor "${name}": data_offsets [${begin}, ${end}] do not match shape [${(shape as number[]).join(',')}] of ${dtype}`);
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Views of a flat vector as the named tensors laid end to end (no copy). */
export function splitFlat(specs: readonly { name: string; shape: readonly number[] }[], flat: Float32Array): WireTensor[] {
  let pos = 0;
  return specs.map((t) => {
    const n = elementCount(t.shape);
    const data = flat.subarray(pos, pos + n);
    pos += n;
    return { name: t.name, shape: [...t.shape], data };
  });
}

/** The tensors' values laid end to end in one new vector (the inverse of {@link splitFlat}). */
export function concatTensors(tensors: readonly { data: Float32Array }[]): Float32Array {
  const out = new Float32Array(tensors.reduce((a, t) => a + t.data.length, 0));
  let pos = 0;
  for (const t of tensors) {
    out.set(t.data, pos);
    pos += t.data.length;
  }
  return out;
}

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The bytes as float32 values: a view when 4-byte aligned, else a copy. */
export function f32View(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return new Float32Array(bytes.slice().buffer);
}

function malformed(message: string): WireFormatError {
  return new WireFormatError('malformed_update', message);
}
