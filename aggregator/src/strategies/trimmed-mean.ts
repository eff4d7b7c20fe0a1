/**
 * @module Coordinate-wise trimmed mean: Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust
 * Distributed Learning: Towards Optimal Statistical Rates." ICML 2018, Option II. For each
 * coordinate, drop the b smallest and b largest of the k values and average the rest, unweighted.
 *
 * b is ⌊β·k⌋ (the paper's β-trimming), or a declared count f per side, as Multi-Krum declares the
 * Byzantine clients it tolerates: with 10 clients sampled per round from a population with 20%
 * attackers, a round often holds 3–4 of them, more than β = 0.2 trims; f = 4 trims 4 per side in
 * every round (the task must then have minClients > 2f).
 */
import type { RoundRules } from '../master/round-machine.ts';
import { checkSlices, exactSum, gather, roundLimit, select } from './order-statistics.ts';
import type { Strategy } from './strategy.ts';
import { forRanges, updateBased } from './update-based.ts';

export type TrimmedMeanParams = { beta: number; f?: undefined } | { f: number; beta?: undefined };

export function trimmedMeanStrategy(p: TrimmedMeanParams): Strategy {
  if (p.f !== undefined) {
    const f = p.f;
    const rules = (r: RoundRules) => (r.minClients > 2 * f ? null : `trimmedmean with f = ${f} needs rounds.minClients > 2f = ${2 * f}`);
    return updateBased(
      'trimmedmean',
      { f },
      (r, out) => forRanges(r.numParams, r.rangeLength, (s, e) => trimmedMeanOf(r.read(s, e), f, out.subarray(s, e))),
      rules,
      true,
    );
  }
  const beta = p.beta;
  return updateBased(
    'trimmedmean',
    { beta },
    (r, out) => forRanges(r.numParams, r.rangeLength, (s, e) => trimmedMean(r.read(s, e), beta, out.subarray(s, e))),
    undefined,
    true,
  );
}

/**
 * Number of values trimmed from each end by {@link trimmedMean}: b = ⌊beta·k⌋, the β-trimming of Yin,
 * Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
 * Rates", ICML 2018 (the product computed in float64, so e.g. beta = 0.29, k = 100 gives 28).
 * Validates beta; use it to check a configuration before a round.
 *
 * @throws RangeError unless 0 ≤ beta < 0.5 and k is a positive integer.
 */
export function trimmedCount(k: number, beta: number): number {
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`trimmed mean needs at least one update, got k = ${k}`);
  if (typeof beta !== 'number' || !(beta >= 0 && beta < 0.5)) throw new RangeError(`trimmed mean beta must satisfy 0 ≤ beta < 0.5, got ${beta}`);
  return Math.floor(beta * k);
}

/**
 * Coordinate-wise trimmed mean (Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed
 * Learning: Towards Optimal Statistical Rates", ICML 2018, Option II): for each coordinate, drop the
 * b = ⌊beta·k⌋ smallest and b largest of the k values and average the remaining k − 2b.
 *
 * Unweighted, as in the paper: every update counts once whatever its examples count.
 *
 * Exact and order-independent: the kept values are exact order statistics, their sum is computed
 * exactly and rounded once to float64 (Shewchuk's non-overlapping partials, as Python's
 * `math.fsum`), then divided by k − 2b in float64 and rounded to float32. So the result does not
 * depend on the order of the updates or on how parameters are split into ranges. beta = 0 is the
 * plain mean; the largest b (k odd, b = (k − 1)/2) is the median.
 *
 * Complexity: two quickselects, O(k) expected and O(k log k) worst case per coordinate (see
 * {@link coordinateMedian}), plus the exact sum, O(k − 2b) for typical data (at most O((k − 2b)²)).
 * Memory: two Float64Array(k) scratch buffers per call; nothing per coordinate.
 *
 * @param slices the same parameter range of each of the k ≥ 1 updates, all of length `out.length`.
 * @param beta the fraction trimmed from each end, 0 ≤ beta < 0.5.
 * @param out receives the trimmed mean of each coordinate.
 * @throws RangeError when beta is out of range, there are no slices or the lengths differ.
 */
export function trimmedMean(slices: readonly Float32Array[], beta: number, out: Float32Array): void {
  checkSlices(slices, out.length, 'trimmedMean');
  trimmedMeanOf(slices, trimmedCount(slices.length, beta), out);
}

/**
 * The trimmed mean dropping `b` values from each end (see {@link trimmedMean}); b must leave at
 * least one value: 0 ≤ 2b < k.
 *
 * @throws RangeError when b is out of range, there are no slices or the lengths differ.
 */
export function trimmedMeanOf(slices: readonly Float32Array[], b: number, out: Float32Array): void {
  checkSlices(slices, out.length, 'trimmedMean');
  const k = slices.length;
  if (!Number.isSafeInteger(b) || b < 0 || 2 * b >= k) throw new RangeError(`trimmed mean cannot trim ${b} of ${k} values from each end`);
  const n = out.length;
  const kept = k - 2 * b;
  const top = k - 1 - b; // index of the largest kept order statistic
  const s = new Float64Array(k);
  const partials = new Float64Array(k + 1);
  const limit = roundLimit(k);
  for (let j = 0; j < n; j++) {
    gather(slices, j, s, k);
    if (b > 0) {
      select(s, 0, k - 1, b, limit); // s[0..b-1] ≤ s[b] ≤ s[b+1..]
      if (top > b) select(s, b + 1, k - 1, top, limit); // s[top+1..] are the b largest
    }
    out[j] = exactSum(s, b, b + kept, partials) / kept + 0;
  }
}
