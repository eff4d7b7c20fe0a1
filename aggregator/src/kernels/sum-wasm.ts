/**
 * @module The WebAssembly SIMD running sum (accumulate.wat) over a memory it owns, and the Wasm
 * finite check over ordinary buffers.
 */
import { type EncodedView, INT8_BLOCK } from '#protocol/encoding.ts';
import {
  CHECK_PIECE,
  checkBatch,
  checkStagingLength,
  checkUpdate,
  checkWeight,
  disposed,
  FOLD,
  invWeight,
  PAGE,
  type RunningSum,
  SLICE,
  type StagingSlot,
  SumBookkeeping,
  sumWeights,
} from './sum-base.ts';

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD

interface Kernels {
  acc1(s: number, p0: number, n: number, w0: number): void;
  acc2(s: number, p0: number, p1: number, n: number, w0: number, w1: number): void;
  acc3(s: number, p0: number, p1: number, p2: number, n: number, w0: number, w1: number, w2: number): void;
  acc4(s: number, p0: number, p1: number, p2: number, p3: number, n: number, w0: number, w1: number, w2: number, w3: number): void;
  first_non_finite(p: number, n: number): number;
  finalize(out: number, base: number, s: number, n: number, invW: number): void;
  acc_f16(s: number, p: number, n: number, w: number): void;
  acc_i8(s: number, p: number, sc: number, n: number, w: number): void;
}

/** The memory and views a wasm running sum works on; replaced wholesale when the memory grows. */
interface Heap {
  k: Kernels;
  buffer: ArrayBuffer;
  f32: Float32Array;
  /** Byte range of the staging area: views into it are read in place. */
  stageBegin: number;
  stageEnd: number;
}

/** Live wasm buffers → their kernels, so firstNonFinite can scan staged views in place. */
export const memories = new WeakMap<ArrayBufferLike, Heap>();

function kernelsOf(instance: WebAssembly.Instance): Kernels {
  const ex = instance.exports as Record<string, unknown>;
  for (const name of ['acc1', 'acc2', 'acc3', 'acc4', 'first_non_finite', 'finalize', 'acc_f16', 'acc_i8']) {
    if (typeof ex[name] !== 'function') throw new TypeError(`the wasm module is not accumulate.wasm (no export ${name}); rebuild it with npm run build:wasm`);
  }
  return ex as unknown as Kernels;
}

function pagesFor(bytes: number): number {
  const pages = Math.max(1, Math.ceil(bytes / PAGE));
  if (pages > 65536) throw new RangeError(`${bytes} bytes exceed the 4 GiB wasm memory limit`);
  return pages;
}

/**
 * Byte offset of the data for elements [b, e) of `u`: in place when `u` is a view into the staging
 * area (checked by checkOwnView beforehand), otherwise after copying them into the slot at byte
 * offset `slotPtr` (a 64 KiB copy that stays in cache for the kernel call that follows).
 */
function place(h: Heap, u: Float32Array, slotPtr: number, b: number, e: number): number {
  if (u.buffer === h.buffer) return u.byteOffset + b * 4;
  h.f32.set(u.subarray(b, e), slotPtr >>> 2);
  return slotPtr;
}

/** Views into the running sum's own memory must lie in the staging area (checked before any work). */
function checkOwnView(h: Heap, u: Float32Array): void {
  if (u.buffer === h.buffer && (u.byteOffset < h.stageBegin || u.byteOffset + u.byteLength > h.stageEnd)) {
    throw new RangeError("a view into the running sum's own memory must lie inside its staging area");
  }
}

function wasmAdd(h: Heap, slots: number, u: Float32Array, w: number, n: number): void {
  const k = h.k;
  for (let b = 0; b < n; b += SLICE) {
    const e = Math.min(b + SLICE, n);
    k.acc1(b * 8, place(h, u, slots, b, e), e - b, w);
  }
}

function wasmAddBatch(h: Heap, slots: number, us: readonly Float32Array[], ws: readonly number[], n: number): void {
  const k = h.k;
  const m = us.length;
  const slot = SLICE * 4;
  for (let b = 0; b < n; b += SLICE) {
    const e = Math.min(b + SLICE, n);
    const len = e - b;
    const s = b * 8;
    let g = 0;
    for (; g + FOLD <= m; g += FOLD) {
      const p0 = place(h, us[g]!, slots, b, e);
      const p1 = place(h, us[g + 1]!, slots + slot, b, e);
      const p2 = place(h, us[g + 2]!, slots + 2 * slot, b, e);
      const p3 = place(h, us[g + 3]!, slots + 3 * slot, b, e);
      k.acc4(s, p0, p1, p2, p3, len, ws[g]!, ws[g + 1]!, ws[g + 2]!, ws[g + 3]!);
    }
    const r = m - g;
    if (r === 3) {
      const p0 = place(h, us[g]!, slots, b, e);
      const p1 = place(h, us[g + 1]!, slots + slot, b, e);
      const p2 = place(h, us[g + 2]!, slots + 2 * slot, b, e);
      k.acc3(s, p0, p1, p2, len, ws[g]!, ws[g + 1]!, ws[g + 2]!);
    } else if (r === 2) {
      const p0 = place(h, us[g]!, slots, b, e);
      const p1 = place(h, us[g + 1]!, slots + slot, b, e);
      k.acc2(s, p0, p1, len, ws[g]!, ws[g + 1]!);
    } else if (r === 1) {
      k.acc1(s, place(h, us[g]!, slots, b, e), len, ws[g]!);
    }
  }
}

/**
 * A compressed update, a slice at a time: its bytes (2 a value for float16, 1 for int8, then the
 * slice's int8 scales after them) copied into the first staging slot, and the kernel run on them.
 * SLICE is a multiple of INT8_BLOCK, so every slice starts on a block.
 */
function wasmAddEncoded(h: Heap, slots: number, u: EncodedView, w: number, n: number): void {
  const bytes = new Uint8Array(h.buffer);
  for (let b = 0; b < n; b += SLICE) {
    const e = Math.min(b + SLICE, n);
    if (u.encoding === 'float16') {
      bytes.set(new Uint8Array(u.data.buffer, u.data.byteOffset + b * 2, (e - b) * 2), slots);
      h.k.acc_f16(b * 8, slots, e - b, w);
    } else if (u.encoding === 'int8') {
      bytes.set(new Uint8Array(u.data.buffer, u.data.byteOffset + b, e - b), slots);
      h.f32.set(u.scales.subarray(b / INT8_BLOCK, Math.ceil(e / INT8_BLOCK)), (slots + SLICE) >>> 2);
      h.k.acc_i8(b * 8, slots, slots + SLICE, e - b, w);
    }
  }
}

function wasmFinalize(h: Heap, slots: number, base: Float32Array, out: Float32Array, invW: number, n: number): void {
  const outInPlace = out.buffer === h.buffer;
  const staged = h.f32.subarray(slots >>> 2, (slots >>> 2) + SLICE);
  for (let b = 0; b < n; b += SLICE) {
    const e = Math.min(b + SLICE, n);
    const bp = place(h, base, slots, b, e);
    const op = outInPlace ? out.byteOffset + b * 4 : slots;
    h.k.finalize(op, bp, b * 8, e - b, invW);
    if (!outInPlace) out.set(e - b === SLICE ? staged : staged.subarray(0, e - b), b);
  }
}

/** Bytes of the slot pool (stagingSlot): four 4 MB update bodies at once; more wait for none, they take the copy path. */
export const SLOT_POOL_BYTES = 16 * 1024 * 1024;
/** Slots start on this boundary (safetensors data is 8-byte aligned within its message; the kernels like 64). */
const SLOT_ALIGN = 64;

export class WasmRunningSum extends SumBookkeeping implements RunningSum {
  readonly implementation = 'wasm' as const;
  inPlaceAdds = 0;
  private memory: WebAssembly.Memory;
  private h: Heap;
  /** Byte ranges of the slots lent out, by start. */
  private readonly lent = new Map<number, number>();
  private poolReady = false;
  /** Byte offset of the FOLD staging slots (after the sum, 64-byte aligned). */
  private readonly slots: number;

  constructor(length: number, module: WebAssembly.Module) {
    super(length, new Float64Array(0));
    this.slots = Math.ceil((length * 8) / 64) * 64;
    const stageBegin = this.slots + FOLD * SLICE * 4;
    this.memory = new WebAssembly.Memory({ initial: pagesFor(stageBegin) });
    const k = kernelsOf(new WebAssembly.Instance(module, { env: { memory: this.memory } }));
    this.h = { k, buffer: this.memory.buffer, f32: new Float32Array(0), stageBegin, stageEnd: stageBegin };
    this.s = this.attach();
  }

  /** (Re)creates the views after construction or growth; the memory is never shrunk or grown elsewhere. */
  private attach(): Float64Array {
    const buffer = this.memory.buffer;
    this.h.buffer = buffer;
    this.h.f32 = new Float32Array(buffer);
    this.h.stageEnd = buffer.byteLength;
    memories.set(buffer, this.h);
    return new Float64Array(buffer, 0, this.length);
  }

  add(update: Float32Array, weight: number): void {
    checkUpdate(update, this.length);
    checkWeight(weight);
    checkOwnView(this.h, update);
    if (update.buffer === this.h.buffer) this.inPlaceAdds++;
    wasmAdd(this.h, this.slots, update, weight, this.length);
    this.totalWeight += weight;
    this.count += 1;
  }

  addBatch(updates: readonly Float32Array[], weights: readonly number[]): void {
    checkBatch(updates, weights, this.length);
    for (const u of updates) checkOwnView(this.h, u);
    wasmAddBatch(this.h, this.slots, updates, weights, this.length);
    this.totalWeight = sumWeights(this.totalWeight, weights);
    this.count += updates.length;
  }

  addEncoded(update: EncodedView, weight: number): void {
    if (update.encoding === 'float32') {
      this.add(update.data, weight);
      return;
    }
    checkUpdate(update, this.length);
    checkWeight(weight);
    wasmAddEncoded(this.h, this.slots, update, weight, this.length);
    this.totalWeight += weight;
    this.count += 1;
  }

  finalizeInto(base: Float32Array, out: Float32Array): void {
    checkUpdate(base, this.length);
    checkUpdate(out, this.length);
    checkOwnView(this.h, base);
    checkOwnView(this.h, out);
    wasmFinalize(this.h, this.slots, base, out, invWeight(this.totalWeight), this.length);
  }

  stagingSlot(byteLength: number): StagingSlot | null {
    checkStagingLength(byteLength);
    if (byteLength > SLOT_POOL_BYTES) return null;
    if (!this.poolReady) {
      // Grown once, before any slot is out: views into slots are never detached by a later growth.
      this.grow(this.h.stageBegin + SLOT_POOL_BYTES);
      this.poolReady = true;
    }
    // First fit among the gaps between lent slots, in address order.
    const begin = this.h.stageBegin;
    const end = begin + SLOT_POOL_BYTES;
    let at = begin;
    for (const [start, stop] of [...this.lent].sort((a, b) => a[0] - b[0])) {
      if (start - at >= byteLength) break;
      at = Math.ceil(stop / SLOT_ALIGN) * SLOT_ALIGN;
    }
    if (at + byteLength > end) return null;
    this.lent.set(at, at + byteLength);
    const buffer = this.h.buffer;
    let released = false;
    return {
      bytes: new Uint8Array(buffer, at, byteLength),
      release: () => {
        if (released) return;
        released = true;
        if (this.h.buffer === buffer) this.lent.delete(at);
      },
    };
  }

  staging(byteLength: number): Uint8Array {
    checkStagingLength(byteLength);
    if (this.lent.size > 0) throw new Error('staging() while staging slots are lent out: it could grow the memory under them');
    this.grow(this.h.stageBegin + byteLength);
    return new Uint8Array(this.h.buffer, this.h.stageBegin, byteLength);
  }

  private grow(need: number): void {
    const have = this.memory.buffer.byteLength;
    if (need > have) {
      this.memory.grow(pagesFor(need) - have / PAGE);
      this.s = this.attach();
    }
  }

  dispose(): void {
    this.lent.clear();
    memories.delete(this.h.buffer);
    this.s = new Float64Array(0);
    this.h = { k: this.h.k, buffer: new ArrayBuffer(0), f32: new Float32Array(0), stageBegin: 0, stageEnd: 0 };
    disposed(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Finite check over ordinary buffers with the wasm kernel: one small memory per module

interface Checker {
  k: Kernels;
  f32: Float32Array;
}

const checkers = new WeakMap<WebAssembly.Module, Checker>();

export function checkerFor(module: WebAssembly.Module): Checker {
  let c = checkers.get(module);
  if (!c) {
    const memory = new WebAssembly.Memory({ initial: 1 });
    c = { k: kernelsOf(new WebAssembly.Instance(module, { env: { memory } })), f32: new Float32Array(memory.buffer, 0, CHECK_PIECE) };
    checkers.set(module, c);
  }
  return c;
}

export function checkerScan(c: Checker, data: Float32Array): number {
  const n = data.length;
  for (let b = 0; b < n; b += CHECK_PIECE) {
    const e = Math.min(b + CHECK_PIECE, n);
    c.f32.set(data.subarray(b, e));
    const i = c.k.first_non_finite(0, e - b);
    if (i >= 0) return b + i;
  }
  return -1;
}
