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
import { JsRunningSum, jsFirstNonFinite } from './sum-js.ts';
import { checkerFor, checkerScan, memories, WasmRunningSum } from './sum-wasm.ts';

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
