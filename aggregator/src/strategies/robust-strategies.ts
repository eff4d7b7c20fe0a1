/**
 * @module Robust strategies: coordinate-wise median, trimmed mean (Yin et al. 2018) and
 * Krum / Multi-Krum (Blanchard et al. 2017) as strategies.
 *
 * They need every update of the round, so the aggregator keeps them (in its storage, in
 * parameter-range chunks) and calls `aggregateByRanges` with a reader of one range of every update;
 * memory stays k × range length whatever the model size. The next model is base + the robust
 * aggregate Δ̂ (the FedAvg server step). Unweighted, as in the papers (see robust.ts).
 */
import { fedAvg } from './fedavg.ts';
import { accumulatePairwiseSquaredDistances, coordinateMedian, krumScores, multiKrumSelect, trimmedMean } from './robust.ts';
import type { Strategy } from './strategy.ts';

/** Reads parameters [start, end) of each of the round's k updates, in acceptance order. */
export type RangeReader = (start: number, end: number) => Float32Array[];

export interface RobustStrategy extends Strategy {
  /** The round's largest supported number of updates (bounds memory and storage). */
  readonly maxUpdatesPerRound: number;
  /** Δ̂ from all k updates, walking the parameters in ranges of `rangeLength`. */
  aggregateByRanges(read: RangeReader, n: number, k: number, rangeLength: number, out: Float32Array): void;
}

export const MAX_ROBUST_UPDATES = 100;

export function isRobust(s: Strategy): s is RobustStrategy {
  return typeof (s as RobustStrategy).aggregateByRanges === 'function';
}

function robust(name: string, params: Record<string, number>, aggregate: RobustStrategy['aggregateByRanges']): RobustStrategy {
  const { apply, initialState } = fedAvg();
  return { name, params, apply, initialState, maxUpdatesPerRound: MAX_ROBUST_UPDATES, aggregateByRanges: aggregate };
}

function forRanges(n: number, rangeLength: number, f: (start: number, end: number) => void): void {
  for (let start = 0; start < n; start += rangeLength) f(start, Math.min(n, start + rangeLength));
}

/** Coordinate-wise median (Yin et al. 2018). */
export function medianStrategy(): RobustStrategy {
  return robust('median', {}, (read, n, _k, len, out) => forRanges(n, len, (s, e) => coordinateMedian(read(s, e), out.subarray(s, e))));
}

/** Coordinate-wise β-trimmed mean (Yin et al. 2018). */
export function trimmedMeanStrategy(beta: number): RobustStrategy {
  return robust('trimmedmean', { beta }, (read, n, _k, len, out) => forRanges(n, len, (s, e) => trimmedMean(read(s, e), beta, out.subarray(s, e))));
}

/**
 * Krum (m = 1) and Multi-Krum (Blanchard et al. 2017): tolerates f Byzantine updates, selects the
 * m with the lowest scores and averages them (equal weights). Two passes over the ranges.
 */
export function krumStrategy(f: number, m: number): RobustStrategy {
  return robust(m === 1 ? 'krum' : 'multikrum', { f, m }, (read, n, k, len, out) => {
    // Each range gets its own accumulator (its k × k distances; its sums of the chosen), added
    // into the total afterwards. Besides summing in shorter runs, these per-range allocations are
    // what lets the runtime reclaim the ranges already read: the stored chunks come back as
    // buffers allocated outside V8, which never prompt a collection themselves, and a pass that
    // allocated nothing let them pile up in workerd (+25 MiB per range for 100 × 1M parameters).
    const dist = new Float64Array(k * k);
    forRanges(n, len, (s, e) => {
      const part = new Float64Array(k * k);
      accumulatePairwiseSquaredDistances(read(s, e), part);
      for (let i = 0; i < part.length; i++) dist[i]! += part[i]!;
    });
    const chosen = multiKrumSelect(krumScores(dist, k, f), Math.min(m, k));
    forRanges(n, len, (s, e) => {
      const slices = read(s, e);
      const sums = new Float64Array(e - s);
      for (const i of chosen) {
        const slice = slices[i]!;
        for (let j = 0; j < sums.length; j++) sums[j]! += slice[j]!;
      }
      const target = out.subarray(s, e);
      for (let j = 0; j < target.length; j++) target[j] = sums[j]! / chosen.length;
    });
  });
}
