/**
 * @module Running weighted sums for aggregation: the hot path of the master aggregator.
 *
 * A running sum is the mergeable triple (Σ wᵢ·Δᵢ, Σ wᵢ, count): a float64 sum over float32
 * updates. Two implementations behind one interface:
 *
 * - **wasm**: WebAssembly SIMD kernels (accumulate.wat) over a memory owned by the running sum.
 *   Updates that live in ordinary JS buffers are copied into the memory slice by slice (a 64 KiB
 *   slice stays in cache while the kernel reads it); updates written straight into the memory via
 *   {@link RunningSum.staging} are read in place, with no copy. `addBatch` folds up to four updates
 *   per pass over the float64 sum, and walks the sum slice by slice so each sum slice stays in
 *   cache across the whole batch.
 * - **js**: plain typed-array loops with the same blocking, used when no module is given.
 *
 * Both perform the same IEEE-754 double operations in the same order (`s = s + w*f64(u)` per
 * update, no fused multiply-add, no reassociation), so for finite inputs `add`, `addBatch`, staged
 * or not, wasm or js, all give bit-identical sums for the same sequence of updates. `merge` adds
 * whole partial sums, which rounds differently from one sequential sum (close, not bit-identical).
 *
 * Memory: one running sum per model, reused across rounds with `reset()`. The hot path allocates no
 * buffers; copying from an ordinary buffer creates one small subarray view object per 64 KiB slice.
 *
 * Pure: imports nothing, uses no Node APIs. The wasm module is injected (wasm-worker.ts for
 * workerd, wasm-node.ts for Node), because Workers cannot compile wasm bytes at runtime.
 */

/** A running sum's persistent state: what a checkpoint stores and what shards exchange. */
export interface SumState {
  sum: Float64Array;
  totalWeight: number;
  count: number;
}

export interface RunningSum {
  /** Number of parameters. */
  readonly length: number;
  /** Σ wᵢ over everything folded in (added, merged, loaded). */
  readonly totalWeight: number;
  /** Number of updates folded in (added, merged, loaded). */
  readonly count: number;
  /** Which kernels this instance runs. */
  readonly implementation: 'wasm' | 'js';
  /** sum += weight * update. `weight` must be finite; `update.length` must equal `length`. */
  add(update: Float32Array, weight: number): void;
  /** Same result, bit for bit, as `add(updates[i], weights[i])` for i = 0, 1, ...; faster. */
  addBatch(updates: readonly Float32Array[], weights: readonly number[]): void;
  /**
   * The current float64 sum: a live view, possibly over wasm memory. Valid until the next
   * `staging()` call that grows the memory, or `dispose()`. Copy it to keep a snapshot.
   */
  sum(): Float64Array;
  /** Restores a checkpoint (copies `sum`). */
  load(sum: Float64Array, totalWeight: number, count: number): void;
  /** Adds another partial sum of the same length (another shard's, or a stored one). */
  merge(other: SumState): void;
  /** out = base + sum / totalWeight (FedAvg), rounded to float32. `out` may be `base`. Throws if totalWeight is 0. */
  finalizeInto(base: Float32Array, out: Float32Array): void;
  /** Back to the empty sum (zeros, weight 0, count 0); keeps the memory for the next round. */
  reset(): void;
  /**
   * A reusable region of `byteLength` bytes to write an update into directly, e.g. a request body
   * read chunk by chunk, then `decodeTensors` over it (its Float32Array views are zero-copy when the
   * data is 4-byte aligned, which safetensors' 8-byte header padding ensures). Float32Array views
   * into this region are folded by add/addBatch/finalizeInto and checked by `firstNonFinite` in
   * place, saving the copy an ordinary buffer needs. Each call returns the same region (moved and
   * grown when needed): earlier staging views and `sum()` views may be invalidated. In the js
   * implementation it is a plain reusable buffer with no speed benefit.
   */
  staging(byteLength: number): Uint8Array;
  /** Drops the buffers (wasm memory) so they can be collected; any later call throws. */
  dispose(): void;
}

export interface RunningSumOptions {
  /** The compiled accumulate.wasm. `null`/absent selects the plain-JS kernels. */
  wasm?: WebAssembly.Module | null;
}

/**
 * Elements per sum slice, the unit of blocking and of staging copies: FOLD slots of 64 KiB plus a
 * 128 KiB sum slice stay in L2. (Tuned on a 2-core Zen 4; 4096..32768 are within noise.)
 */
const SLICE = 16384;
/** Updates folded per pass over a sum slice. */
const FOLD = 4;
/** Elements per copy+scan step of the finite check over ordinary buffers (stays in L1). */
const CHECK_PIECE = 1024;
const PAGE = 65536;

/**
 * Creates an empty running sum of `length` parameters. With `options.wasm` it instantiates the
 * kernels over a fresh memory sized for the sum plus 256 KiB of staging slots (8·length + 256 KiB
 * bytes, rounded up to 64 KiB pages; `staging()` grows it); otherwise it allocates one
 * Float64Array. Create one per model and `reset()` it between rounds.
 */
export function createRunningSum(length: number, options: RunningSumOptions = {}): RunningSum {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
  return options.wasm ? new WasmRunningSum(length, options.wasm) : new JsRunningSum(length);
}

/**
 * Index of the first NaN, +Inf or -Inf in `data`, or -1 when every value is finite.
 *
 * Uses the fastest path available: in place when `data` is a view into a running sum's staging
 * area; otherwise, with `wasm`, a SIMD scan over cache-sized copies (one shared 64 KiB memory per
 * module); otherwise a JS loop (about a third as fast; see bench/README.md). Allocates no buffers besides that memory, created
 * once per module (the copy path creates one small subarray view per 4 KiB).
 */
export function firstNonFinite(data: Float32Array, wasm?: WebAssembly.Module | null): number {
  const owner = memories.get(data.buffer);
  if (owner) return owner.k.first_non_finite(data.byteOffset, data.length);
  if (wasm) return checkerScan(checkerFor(wasm), data);
  return jsFirstNonFinite(data);
}

// ---------------------------------------------------------------------------------------------
// Shared checks

function checkUpdate(update: Float32Array, length: number): void {
  if (update.length !== length) throw new RangeError(`update has ${update.length} values, the sum has ${length}`);
}

function checkWeight(weight: number): void {
  if (typeof weight !== 'number' || !Number.isFinite(weight)) throw new RangeError(`weight must be a finite number, got ${weight}`);
}

function checkBatch(updates: readonly Float32Array[], weights: readonly number[], length: number): void {
  if (updates.length !== weights.length) throw new RangeError(`${updates.length} updates but ${weights.length} weights`);
  for (let i = 0; i < updates.length; i++) {
    checkUpdate(updates[i]!, length);
    checkWeight(weights[i]!);
  }
}

function checkState(sum: Float64Array, totalWeight: number, count: number, length: number): void {
  if (sum.length !== length) throw new RangeError(`sum has ${sum.length} values, expected ${length}`);
  checkWeight(totalWeight);
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
}

function checkStagingLength(byteLength: number): void {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) throw new RangeError(`byteLength must be a non-negative integer, got ${byteLength}`);
}

function invWeight(totalWeight: number): number {
  if (totalWeight === 0) throw new RangeError('cannot finalize a running sum with total weight 0');
  return 1 / totalWeight;
}

function sumWeights(total: number, weights: readonly number[]): number {
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Plain-JS hot loops (small top-level functions so the JIT optimizes each on its own)

/** x*0 is ±0 for finite x and NaN for NaN/±Inf; a block sum of those is nonzero iff one is bad. */
function jsFirstNonFinite(a: Float32Array): number {
  const n = a.length;
  const end8 = n - (n % 8);
  let i = 0;
  for (; i < end8; i += 8) {
    const z = a[i]! * 0 + a[i + 1]! * 0 + a[i + 2]! * 0 + a[i + 3]! * 0 + a[i + 4]! * 0 + a[i + 5]! * 0 + a[i + 6]! * 0 + a[i + 7]! * 0;
    if (z !== 0) break;
  }
  for (; i < n; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

function jsAcc1(s: Float64Array, u0: Float32Array, w0: number, b: number, e: number): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]!;
}

function jsAcc2(s: Float64Array, u0: Float32Array, u1: Float32Array, w0: number, w1: number, b: number, e: number): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]!;
}

function jsAcc3(s: Float64Array, u0: Float32Array, u1: Float32Array, u2: Float32Array, w0: number, w1: number, w2: number, b: number, e: number): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]! + w2 * u2[i]!;
}

function jsAcc4(
  s: Float64Array,
  u0: Float32Array,
  u1: Float32Array,
  u2: Float32Array,
  u3: Float32Array,
  w0: number,
  w1: number,
  w2: number,
  w3: number,
  b: number,
  e: number,
): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]! + w2 * u2[i]! + w3 * u3[i]!;
}

/** Blocked batch: sum slices outer (each stays in cache), groups of four updates inner. */
function jsAddBatch(s: Float64Array, us: readonly Float32Array[], ws: readonly number[]): void {
  const n = s.length;
  const m = us.length;
  for (let b = 0; b < n; b += SLICE) {
    const e = Math.min(b + SLICE, n);
    let g = 0;
    for (; g + FOLD <= m; g += FOLD) jsAcc4(s, us[g]!, us[g + 1]!, us[g + 2]!, us[g + 3]!, ws[g]!, ws[g + 1]!, ws[g + 2]!, ws[g + 3]!, b, e);
    const r = m - g;
    if (r === 3) jsAcc3(s, us[g]!, us[g + 1]!, us[g + 2]!, ws[g]!, ws[g + 1]!, ws[g + 2]!, b, e);
    else if (r === 2) jsAcc2(s, us[g]!, us[g + 1]!, ws[g]!, ws[g + 1]!, b, e);
    else if (r === 1) jsAcc1(s, us[g]!, ws[g]!, b, e);
  }
}

function jsFinalize(s: Float64Array, base: Float32Array, out: Float32Array, invW: number): void {
  const n = s.length;
  for (let i = 0; i < n; i++) out[i] = base[i]! + s[i]! * invW;
}

function addF64(s: Float64Array, o: Float64Array): void {
  const n = s.length;
  for (let i = 0; i < n; i++) s[i] = s[i]! + o[i]!;
}

// ---------------------------------------------------------------------------------------------
// Plain JS

/** The bookkeeping both implementations share: the float64 sum's view, Σw and the count. */
abstract class SumBookkeeping {
  readonly length: number;
  totalWeight = 0;
  count = 0;
  protected s: Float64Array;

  constructor(length: number, s: Float64Array) {
    this.length = length;
    this.s = s;
  }

  sum(): Float64Array {
    return this.s;
  }

  load(sum: Float64Array, totalWeight: number, count: number): void {
    checkState(sum, totalWeight, count, this.length);
    this.s.set(sum);
    this.totalWeight = totalWeight;
    this.count = count;
  }

  merge(other: SumState): void {
    checkState(other.sum, other.totalWeight, other.count, this.length);
    addF64(this.s, other.sum);
    this.totalWeight += other.totalWeight;
    this.count += other.count;
  }

  reset(): void {
    this.s.fill(0);
    this.totalWeight = 0;
    this.count = 0;
  }
}

class JsRunningSum extends SumBookkeeping implements RunningSum {
  readonly implementation = 'js' as const;
  private stage = new Uint8Array(0);

  constructor(length: number) {
    super(length, new Float64Array(length));
  }

  add(update: Float32Array, weight: number): void {
    checkUpdate(update, this.length);
    checkWeight(weight);
    jsAcc1(this.s, update, weight, 0, this.length);
    this.totalWeight += weight;
    this.count += 1;
  }

  addBatch(updates: readonly Float32Array[], weights: readonly number[]): void {
    checkBatch(updates, weights, this.length);
    jsAddBatch(this.s, updates, weights);
    this.totalWeight = sumWeights(this.totalWeight, weights);
    this.count += updates.length;
  }

  finalizeInto(base: Float32Array, out: Float32Array): void {
    checkUpdate(base, this.length);
    checkUpdate(out, this.length);
    jsFinalize(this.s, base, out, invWeight(this.totalWeight));
  }

  staging(byteLength: number): Uint8Array {
    checkStagingLength(byteLength);
    if (this.stage.length < byteLength) this.stage = new Uint8Array(Math.ceil(byteLength / PAGE) * PAGE);
    return this.stage.subarray(0, byteLength);
  }

  dispose(): void {
    this.s = new Float64Array(0);
    this.stage = new Uint8Array(0);
    disposed(this);
  }
}

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD

interface Kernels {
  acc1(s: number, p0: number, n: number, w0: number): void;
  acc2(s: number, p0: number, p1: number, n: number, w0: number, w1: number): void;
  acc3(s: number, p0: number, p1: number, p2: number, n: number, w0: number, w1: number, w2: number): void;
  acc4(s: number, p0: number, p1: number, p2: number, p3: number, n: number, w0: number, w1: number, w2: number, w3: number): void;
  first_non_finite(p: number, n: number): number;
  finalize(out: number, base: number, s: number, n: number, invW: number): void;
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
const memories = new WeakMap<ArrayBufferLike, Heap>();

function kernelsOf(instance: WebAssembly.Instance): Kernels {
  const ex = instance.exports as Record<string, unknown>;
  for (const name of ['acc1', 'acc2', 'acc3', 'acc4', 'first_non_finite', 'finalize']) {
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

class WasmRunningSum extends SumBookkeeping implements RunningSum {
  readonly implementation = 'wasm' as const;
  private memory: WebAssembly.Memory;
  private h: Heap;
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

  finalizeInto(base: Float32Array, out: Float32Array): void {
    checkUpdate(base, this.length);
    checkUpdate(out, this.length);
    checkOwnView(this.h, base);
    checkOwnView(this.h, out);
    wasmFinalize(this.h, this.slots, base, out, invWeight(this.totalWeight), this.length);
  }

  staging(byteLength: number): Uint8Array {
    checkStagingLength(byteLength);
    const need = this.h.stageBegin + byteLength;
    const have = this.memory.buffer.byteLength;
    if (need > have) {
      this.memory.grow(pagesFor(need) - have / PAGE);
      this.s = this.attach();
    }
    return new Uint8Array(this.h.buffer, this.h.stageBegin, byteLength);
  }

  dispose(): void {
    memories.delete(this.h.buffer);
    this.s = new Float64Array(0);
    this.h = { k: this.h.k, buffer: new ArrayBuffer(0), f32: new Float32Array(0), stageBegin: 0, stageEnd: 0 };
    disposed(this);
  }
}

/** Makes every method of a disposed running sum throw. */
function disposed(target: RunningSum): void {
  const fail = (): never => {
    throw new Error('running sum was disposed');
  };
  for (const name of ['add', 'addBatch', 'sum', 'load', 'merge', 'finalizeInto', 'reset', 'staging', 'dispose'] as const) {
    Object.defineProperty(target, name, { value: fail });
  }
}

// ---------------------------------------------------------------------------------------------
// Finite check over ordinary buffers with the wasm kernel: one small memory per module

interface Checker {
  k: Kernels;
  f32: Float32Array;
}

const checkers = new WeakMap<WebAssembly.Module, Checker>();

function checkerFor(module: WebAssembly.Module): Checker {
  let c = checkers.get(module);
  if (!c) {
    const memory = new WebAssembly.Memory({ initial: 1 });
    c = { k: kernelsOf(new WebAssembly.Instance(module, { env: { memory } })), f32: new Float32Array(memory.buffer, 0, CHECK_PIECE) };
    checkers.set(module, c);
  }
  return c;
}

function checkerScan(c: Checker, data: Float32Array): number {
  const n = data.length;
  for (let b = 0; b < n; b += CHECK_PIECE) {
    const e = Math.min(b + CHECK_PIECE, n);
    c.f32.set(data.subarray(b, e));
    const i = c.k.first_non_finite(0, e - b);
    if (i >= 0) return b + i;
  }
  return -1;
}
