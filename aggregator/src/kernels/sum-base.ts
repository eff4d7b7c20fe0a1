/**
 * @module What both running-sum implementations share: blocking constants, argument checks and
 * the bookkeeping of the float64 sum, Σw and the count.
 */
import type { RunningSum, SumState } from './running-sum.ts';

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

export function checkUpdate(update: Float32Array, length: number): void {
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
