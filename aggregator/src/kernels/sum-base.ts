/**
 * @module What both running-sum implementations share: the interface they implement, blocking
 * constants, argument checks and the bookkeeping of the float64 sum, Σw and the count.
 */
import type { EncodedView } from '#protocol/encoding.ts';

/** A running sum's persistent state: what a checkpoint stores and what shards exchange. */
export interface SumState {
  sum: Float64Array;
  totalWeight: number;
  count: number;
}

/** A staging region lent by `stagingSlot`. */
export interface StagingSlot {
  bytes: Uint8Array;
  release(): void;
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
   * sum += weight * update for an update in a compressed encoding (float16, or int8 with its
   * per-block scales), read by the kernels as it is: no float32 copy of it. A float32 view is `add`.
   * Both implementations perform the same float64 operations on the same decoded float32 values.
   */
  addEncoded(update: EncodedView, weight: number): void;
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
  /**
   * A region of `byteLength` bytes of the sum's own memory to read one request body into, for as
   * long as the caller holds it (several at once: one per body in flight), or null when the pool
   * has no room (or the implementation has no benefit from it: js). An update decoded from it is
   * folded in place, without the copy into Wasm memory. Its views stay valid until `release`: the
   * memory never grows while a slot is out. Not to be mixed with `staging()`.
   */
  stagingSlot(byteLength: number): StagingSlot | null;
  /** Updates `add` read in place (from a staging area or slot) rather than copied in. */
  readonly inPlaceAdds: number;
  /** Drops the buffers (wasm memory) so they can be collected; any later call throws. */
  dispose(): void;
}

/**
 * Elements per sum slice, the unit of blocking and of staging copies: FOLD slots of 64 KiB plus a
 * 128 KiB sum slice stay in L2. (Tuned on a 2-core Zen 4; 4096..32768 are within noise.)
 */
export const SLICE = 16384;
/** Updates folded per pass over a sum slice. */
export const FOLD = 4;
/** Elements per copy+scan step of the finite check over ordinary buffers (stays in L1). */
export const CHECK_PIECE = 1024;
export const PAGE = 65536;

// ---------------------------------------------------------------------------------------------
// Shared checks

export function checkUpdate(update: { length: number }, length: number): void {
  if (update.length !== length) throw new RangeError(`update has ${update.length} values, the sum has ${length}`);
}

export function checkWeight(weight: number): void {
  if (typeof weight !== 'number' || !Number.isFinite(weight)) throw new RangeError(`weight must be a finite number, got ${weight}`);
}

export function checkBatch(updates: readonly Float32Array[], weights: readonly number[], length: number): void {
  if (updates.length !== weights.length) throw new RangeError(`${updates.length} updates but ${weights.length} weights`);
  for (let i = 0; i < updates.length; i++) {
    checkUpdate(updates[i]!, length);
    checkWeight(weights[i]!);
  }
}

export function checkState(sum: Float64Array, totalWeight: number, count: number, length: number): void {
  if (sum.length !== length) throw new RangeError(`sum has ${sum.length} values, expected ${length}`);
  checkWeight(totalWeight);
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
}

export function checkStagingLength(byteLength: number): void {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) throw new RangeError(`byteLength must be a non-negative integer, got ${byteLength}`);
}

export function invWeight(totalWeight: number): number {
  if (totalWeight === 0) throw new RangeError('cannot finalize a running sum with total weight 0');
  return 1 / totalWeight;
}

export function sumWeights(total: number, weights: readonly number[]): number {
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  return total;
}

/** The bookkeeping both implementations share: the float64 sum's view, Σw and the count. */
export abstract class SumBookkeeping {
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

/** Makes every method of a disposed running sum throw. */
export function disposed(target: RunningSum): void {
  const fail = (): never => {
    throw new Error('running sum was disposed');
  };
  for (const name of ['add', 'addBatch', 'sum', 'load', 'merge', 'finalizeInto', 'reset', 'staging', 'dispose'] as const) {
    Object.defineProperty(target, name, { value: fail });
  }
}

export function addF64(s: Float64Array, o: Float64Array): void {
  const n = s.length;
  for (let i = 0; i < n; i++) s[i] = s[i]! + o[i]!;
}
