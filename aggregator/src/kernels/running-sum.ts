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
import type { RunningSum } from './sum-base.ts';
import { JsRunningSum, jsFirstNonFinite } from './sum-js.ts';
import { checkerFor, checkerScan, memories, WasmRunningSum } from './sum-wasm.ts';

export type { RunningSum, SumState } from './sum-base.ts';

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
