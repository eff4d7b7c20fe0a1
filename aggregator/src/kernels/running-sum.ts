/**
 * @module Running weighted sums for aggregation: the hot path of the master aggregator.
 *
 * A running sum is the mergeable triple (Σ wᵢ·Δᵢ, Σ wᵢ, count) with a float64 sum over float32
 * updates. Two implementations with one interface:
 *
 * - **wasm**: WebAssembly SIMD kernels (accumulate.wat). Updates live in JS memory, so each is
 *   staged into the instance's memory in 64 KiB slices that stay in cache while the kernel reads
 *   them; `addBatch` folds up to four updates per pass over the float64 sum, and walks the sum
 *   slice by slice so one slice stays in cache across all updates of the batch.
 * - **js**: plain typed-array loops with the same blocking, used when no module is given.
 *
 * Both perform the same IEEE-754 double operations in the same order (`s = s + w*f64(u)` per
 * update, no fused multiply-add, no reassociation), so for finite inputs `add`, `addBatch`, wasm
 * and js all give bit-identical sums for the same sequence of updates. `merge` adds partial sums,
 * which rounds differently from one sequential sum (close, not bit-identical).
 *
 * Pure: imports nothing, uses no Node APIs. The wasm module is injected (see wasm-worker.ts for
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
  /** Σ wᵢ over the updates folded in (including merged and loaded state). */
  readonly totalWeight: number;
  /** Number of updates folded in (including merged and loaded state). */
  readonly count: number;
  /** Which kernels this instance runs. */
  readonly implementation: 'wasm' | 'js';
  /** sum += weight * update. `weight` must be finite; `update.length` must equal `length`. */
  add(update: Float32Array, weight: number): void;
  /** Same result, bit for bit, as `add(updates[i], weights[i])` for i = 0, 1, ...; faster. */
  addBatch(updates: readonly Float32Array[], weights: readonly number[]): void;
  /** The current float64 sum: a live view (may alias wasm memory), valid until `dispose()`. Copy it to keep a snapshot. */
  sum(): Float64Array;
  /** Restores a checkpoint (copies `sum`). */
  load(sum: Float64Array, totalWeight: number, count: number): void;
  /** Adds another partial sum of the same length (another shard's, or a stored one). */
  merge(other: SumState): void;
  /** out = base + sum / totalWeight (FedAvg), rounded to float32. `out` may be `base`. Throws if totalWeight is 0. */
  finalizeInto(base: Float32Array, out: Float32Array): void;
  /** Back to the empty sum (zeros, weight 0, count 0); keeps the memory for the next round. */
  reset(): void;
  /** Drops the buffers (wasm memory) so they can be collected; any later call throws. */
  dispose(): void;
}

export interface RunningSumOptions {
  /** The compiled accumulate.wasm. `null`/absent selects the plain-JS kernels. */
  wasm?: WebAssembly.Module | null;
}

/** float32 elements per staging slice; must equal the wasm module's SLOT_BYTES / 4. */
export const SLICE = 16384;
const SLOT_BYTES = SLICE * 4;
/** Updates folded per pass over the sum. */
const FOLD = 4;
const PAGE = 65536;

/**
 * Creates an empty running sum of `length` parameters. With `options.wasm` it instantiates the
 * kernels over a fresh memory sized for the sum plus 256 KiB of staging (8·length + 256 KiB bytes
 * in total); otherwise it allocates one Float64Array. Create one per model and `reset()` it
 * between rounds.
 */
export function createRunningSum(length: number, options: RunningSumOptions = {}): RunningSum {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
  return options.wasm ? new WasmRunningSum(length, options.wasm) : new JsRunningSum(length);
}

/**
 * Index of the first NaN, +Inf or -Inf in `data`, or -1 when every value is finite. Checks the
 * exponent bits (all ones) over a Uint32 view, so it never allocates more than that view. The
 * `wasm` argument is accepted for symmetry; the JS loop is as fast as staging into wasm memory
 * plus a SIMD scan (see bench/README.md), so it is used in both cases.
 */
export function firstNonFinite(data: Float32Array, wasm?: WebAssembly.Module | null): number {
  void wasm;
  return firstNonFiniteBits(new Uint32Array(data.buffer, data.byteOffset, data.length));
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

function invWeight(totalWeight: number): number {
  if (totalWeight === 0) throw new RangeError('cannot finalize a running sum with total weight 0');
  return 1 / totalWeight;
}

function sumWeights(total: number, weights: readonly number[]): number {
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Hot loops (small top-level functions so the JIT optimizes them on their own)

/** Exponent bits all ones ⇔ NaN or ±Inf. Branch-free inside 16-value blocks. */
function firstNonFiniteBits(bits: Uint32Array): number {
  const n = bits.length;
  const end16 = n - (n % 16);
  let i = 0;
  for (; i < end16; i += 16) {
    let flag = 0;
    for (let j = i; j < i + 16; j++) flag |= ((bits[j]! & 0x7f800000) + 0x00800000) | 0;
    if (flag < 0) break;
  }
  for (; i < n; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) return i;
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
  s: Float64Array, u0: Float32Array, u1: Float32Array, u2: Float32Array, u3: Float32Array,
  w0: number, w1: number, w2: number, w3: number, b: number, e: number,
): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]! + w2 * u2[i]! + w3 * u3[i]!;
}

/** Blocked batch: slice outer (the sum slice stays in cache), groups of four inner. */
function jsAddBatch(s: Float64Array, updates: readonly Float32Array[], weights: readonly number[]): void {
  const n = s.length;
  const m = updates.length;
  for (let b = 0; b < n; b += SLICE) {
    const e = b + SLICE < n ? b + SLICE : n;
    let g = 0;
    for (; g + FOLD <= m; g += FOLD) {
      jsAcc4(s, updates[g]!, updates[g + 1]!, updates[g + 2]!, updates[g + 3]!, weights[g]!, weights[g + 1]!, weights[g + 2]!, weights[g + 3]!, b, e);
    }
    const r = m - g;
    if (r === 3) jsAcc3(s, updates[g]!, updates[g + 1]!, updates[g + 2]!, weights[g]!, weights[g + 1]!, weights[g + 2]!, b, e);
    else if (r === 2) jsAcc2(s, updates[g]!, updates[g + 1]!, weights[g]!, weights[g + 1]!, b, e);
    else if (r === 1) jsAcc1(s, updates[g]!, weights[g]!, b, e);
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

class JsRunningSum implements RunningSum {
  readonly length: number;
  readonly implementation = 'js' as const;
  totalWeight = 0;
  count = 0;
  private s: Float64Array;

  constructor(length: number) {
    this.length = length;
    this.s = new Float64Array(length);
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

  finalizeInto(base: Float32Array, out: Float32Array): void {
    checkUpdate(base, this.length);
    checkUpdate(out, this.length);
    jsFinalize(this.s, base, out, invWeight(this.totalWeight));
  }

  reset(): void {
    this.s.fill(0);
    this.totalWeight = 0;
    this.count = 0;
  }

  dispose(): void {
    this.s = new Float64Array(0);
    disposed(this);
  }
}

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD

interface Kernels {
  acc1(s: number, u: number, n: number, w0: number): void;
  acc2(s: number, u: number, n: number, w0: number, w1: number): void;
  acc3(s: number, u: number, n: number, w0: number, w1: number, w2: number): void;
  acc4(s: number, u: number, n: number, w0: number, w1: number, w2: number, w3: number): void;
  first_non_finite(p: number, n: number): number;
  finalize(out: number, base: number, s: number, n: number, invW: number): void;
}

/** Instantiates the kernels over a new memory of at least `bytes` bytes. */
function instantiate(module: WebAssembly.Module, bytes: number): { memory: WebAssembly.Memory; k: Kernels } {
  const pages = Math.max(1, Math.ceil(bytes / PAGE));
  if (pages > 65536) throw new RangeError(`a running sum of ${bytes} bytes exceeds the 4 GiB wasm memory limit`);
  const memory = new WebAssembly.Memory({ initial: pages });
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const ex = instance.exports as Record<string, unknown>;
  const slot = ex.SLOT_BYTES as WebAssembly.Global | undefined;
  if (!slot || slot.value !== SLOT_BYTES || typeof ex.acc4 !== 'function' || typeof ex.finalize !== 'function') {
    throw new TypeError('the wasm module is not a compatible accumulate.wasm (rebuild it with npm run build:wasm)');
  }
  return { memory, k: ex as unknown as Kernels };
}

/** add(): stage each slice of the update, fold it into the sum slice. */
function wasmAdd(k: Kernels, heap: Float32Array, scratch: number, u: Float32Array, w: number, n: number): void {
  const slot = scratch >>> 2;
  for (let b = 0; b < n; b += SLICE) {
    const e = b + SLICE < n ? b + SLICE : n;
    heap.set(u.subarray(b, e), slot);
    k.acc1(b * 8, scratch, e - b, w);
  }
}

/** addBatch(): slice outer so the float64 sum slice stays in cache; up to four updates per pass. */
function wasmAddBatch(k: Kernels, heap: Float32Array, scratch: number, us: readonly Float32Array[], ws: readonly number[], n: number): void {
  const slot = scratch >>> 2;
  const m = us.length;
  for (let b = 0; b < n; b += SLICE) {
    const e = b + SLICE < n ? b + SLICE : n;
    const len = e - b;
    const s = b * 8;
    let g = 0;
    for (; g + FOLD <= m; g += FOLD) {
      heap.set(us[g]!.subarray(b, e), slot);
      heap.set(us[g + 1]!.subarray(b, e), slot + SLICE);
      heap.set(us[g + 2]!.subarray(b, e), slot + 2 * SLICE);
      heap.set(us[g + 3]!.subarray(b, e), slot + 3 * SLICE);
      k.acc4(s, scratch, len, ws[g]!, ws[g + 1]!, ws[g + 2]!, ws[g + 3]!);
    }
    const r = m - g;
    for (let j = 0; j < r; j++) heap.set(us[g + j]!.subarray(b, e), slot + j * SLICE);
    if (r === 3) k.acc3(s, scratch, len, ws[g]!, ws[g + 1]!, ws[g + 2]!);
    else if (r === 2) k.acc2(s, scratch, len, ws[g]!, ws[g + 1]!);
    else if (r === 1) k.acc1(s, scratch, len, ws[g]!);
  }
}

function wasmFinalize(k: Kernels, heap: Float32Array, scratch: number, base: Float32Array, out: Float32Array, invW: number, n: number): void {
  const slot = scratch >>> 2;
  const staged = heap.subarray(slot, slot + SLICE);
  for (let b = 0; b < n; b += SLICE) {
    const e = b + SLICE < n ? b + SLICE : n;
    heap.set(base.subarray(b, e), slot);
    k.finalize(scratch, scratch, b * 8, e - b, invW);
    out.set(e - b === SLICE ? staged : staged.subarray(0, e - b), b);
  }
}

class WasmRunningSum implements RunningSum {
  readonly length: number;
  readonly implementation = 'wasm' as const;
  totalWeight = 0;
  count = 0;
  private k: Kernels;
  private memory: WebAssembly.Memory | null;
  private heap: Float32Array;
  private s: Float64Array;
  /** Byte offset of the four staging slots (after the sum, 64-byte aligned). */
  private readonly scratch: number;

  constructor(length: number, module: WebAssembly.Module) {
    this.length = length;
    this.scratch = Math.ceil((length * 8) / 64) * 64;
    const { memory, k } = instantiate(module, this.scratch + FOLD * SLOT_BYTES);
    this.k = k;
    this.memory = memory;
    // The memory never grows after this, so these views stay attached.
    this.heap = new Float32Array(memory.buffer);
    this.s = new Float64Array(memory.buffer, 0, length);
  }

  add(update: Float32Array, weight: number): void {
    checkUpdate(update, this.length);
    checkWeight(weight);
    wasmAdd(this.k, this.heap, this.scratch, update, weight, this.length);
    this.totalWeight += weight;
    this.count += 1;
  }

  addBatch(updates: readonly Float32Array[], weights: readonly number[]): void {
    checkBatch(updates, weights, this.length);
    wasmAddBatch(this.k, this.heap, this.scratch, updates, weights, this.length);
    this.totalWeight = sumWeights(this.totalWeight, weights);
    this.count += updates.length;
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

  finalizeInto(base: Float32Array, out: Float32Array): void {
    checkUpdate(base, this.length);
    checkUpdate(out, this.length);
    wasmFinalize(this.k, this.heap, this.scratch, base, out, invWeight(this.totalWeight), this.length);
  }

  reset(): void {
    this.s.fill(0);
    this.totalWeight = 0;
    this.count = 0;
  }

  dispose(): void {
    this.memory = null;
    this.heap = new Float32Array(0);
    this.s = new Float64Array(0);
    disposed(this);
  }
}

/** Makes every method of a disposed running sum throw. */
function disposed(target: RunningSum): void {
  const fail = (): never => {
    throw new Error('running sum was disposed');
  };
  for (const name of ['add', 'addBatch', 'sum', 'load', 'merge', 'finalizeInto', 'reset', 'dispose'] as const) {
    Object.defineProperty(target, name, { value: fail });
  }
}
