/**
 * @module Krum and Multi-Krum: Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with
 * Adversaries: Byzantine Tolerant Gradient Descent." NeurIPS 2017. Tolerating f Byzantine updates,
 * score each update by the sum of its k − f − 2 smallest squared distances to the others, select the
 * m with the lowest scores (m = 1: Krum) and average them.
 *
 * The average of the selection: `weighting: 'equal'` (the paper's rule, and the default) or
 * `'examples'`, weighted by their example counts, as Flower's Krum does (its `aggregate` of the
 * selected results), so a setup ported from Flower gets Flower's numbers. Equal weights are the
 * robust choice: a Byzantine client that claims many examples pulls no harder.
 */
import type { RoundRules } from '../master/round-machine.ts';
import { checkSlices } from './order-statistics.ts';
import type { Strategy } from './strategy.ts';
import { forRanges, updateBased } from './update-based.ts';

export interface KrumParams {
  f: number;
  m: number;
  weighting: 'equal' | 'examples';
}

export function krum({ f, m, weighting }: KrumParams): Strategy {
  const rules = (r: RoundRules) => {
    if (r.minClients <= 2 * f + 2) return `krum with f = ${f} needs rounds.minClients > 2f + 2 = ${2 * f + 2}`;
    if (m > r.minClients - f) return `krum m = ${m} must be at most rounds.minClients − f = ${r.minClients - f}`;
    return null;
  };
  return updateBased(
    'krum',
    { f, m, weighting },
    ({ read, numParams: n, count: k, rangeLength: len, numExamples }, out) => {
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
      const selection = krumSelection(dist, { f, m, weighting }, numExamples);
      forRanges(n, len, (s, e) => selectionMeanInto(read(s, e), selection, out.subarray(s, e)));
    },
    rules,
  );
}

/** Which updates (Multi-)Krum averages, and with which weights: from the round's k × k squared distances. */
export interface KrumSelection {
  chosen: number[];
  weights: number[];
  total: number;
}

export function krumSelection(dist: Float64Array, { f, m, weighting }: KrumParams, numExamples: readonly number[]): KrumSelection {
  const k = numExamples.length;
  const chosen = multiKrumSelect(krumScores(dist, k, f), Math.min(m, k));
  const weights = chosen.map((i) => (weighting === 'examples' ? numExamples[i]! : 1));
  return { chosen, weights, total: weights.reduce((a, b) => a + b, 0) };
}

/** The selection's weighted mean over one parameter range of every update (float64 sums in selection order, rounded once), into `target`. */
export function selectionMeanInto(slices: readonly Float32Array[], { chosen, weights, total }: KrumSelection, target: Float32Array): void {
  const sums = new Float64Array(target.length);
  chosen.forEach((i, c) => {
    const slice = slices[i]!;
    const wi = weights[c]!;
    if (wi === 1) for (let j = 0; j < sums.length; j++) sums[j]! += slice[j]!;
    else for (let j = 0; j < sums.length; j++) sums[j]! += wi * slice[j]!;
  });
  for (let j = 0; j < target.length; j++) target[j] = sums[j]! / total;
}

/**
 * Pairwise squared Euclidean distances for Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine
 * Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017), one parameter
 * range at a time: adds ‖slices[i] − slices[j]‖² of this range into `dist[i·k + j]` and
 * `dist[j·k + i]` (k × k, row-major, symmetric, zero diagonal). Start from a zeroed `dist` and call
 * once per range, in any range sizes.
 *
 * Each pair's value is one float64 running sum over the coordinates in order, continued from the
 * upper-triangle entry `dist[i·k + j]` (i < j) and mirrored to the lower triangle, so ranges
 * visited in increasing order give bit-identical distances to one pass over all parameters.
 *
 * Complexity: k(k − 1)/2 · (range length) multiply-adds; the range is processed in cache-sized
 * tiles with four pairs per inner loop. No allocation besides small per-tile views.
 *
 * @param slices the same parameter range of each of the k ≥ 1 updates, all of equal length.
 * @param dist the k × k accumulator (length k²), updated in place.
 * @throws RangeError when there are no slices, the lengths differ or `dist.length` ≠ k².
 */
export function accumulatePairwiseSquaredDistances(slices: readonly Float32Array[], dist: Float64Array): void {
  const k = slices.length;
  if (k === 0) throw new RangeError('accumulatePairwiseSquaredDistances needs at least one update slice');
  checkSlices(slices, slices[0]!.length, 'accumulatePairwiseSquaredDistances');
  if (dist.length !== k * k) throw new RangeError(`dist must have k × k = ${k * k} entries for k = ${k} updates, got ${dist.length}`);
  const n = slices[0]!.length;
  for (let t0 = 0; t0 < n; t0 += DIST_TILE) {
    const t1 = Math.min(t0 + DIST_TILE, n);
    for (let i = 0; i < k - 1; i++) {
      const a = slices[i]!;
      const row = i * k;
      let j = i + 1;
      for (; j + 4 <= k; j += 4) {
        pairs4(dist, row + j, a, slices[j]!, slices[j + 1]!, slices[j + 2]!, slices[j + 3]!, t0, t1);
      }
      for (; j < k; j++) pair1(dist, row + j, a, slices[j]!, t0, t1);
    }
  }
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) dist[j * k + i] = dist[i * k + j]!;
}

/**
 * Krum scores (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
 * Byzantine Tolerant Gradient Descent", NeurIPS 2017): for each update i, the sum of its
 * k − f − 2 smallest squared distances to the other updates (summed in ascending order).
 * Unweighted, as in the paper.
 *
 * Complexity: O(k² log k) time, O(k) scratch.
 *
 * @param dist the k × k squared distances from {@link accumulatePairwiseSquaredDistances} (row i is read).
 * @param k the number of updates.
 * @param f the number of Byzantine updates tolerated; Krum requires k > 2f + 2.
 * @throws RangeError unless k, f are integers with k > 2f + 2 ≥ 2, `dist.length` = k², and every
 *   off-diagonal distance is ≥ 0 (not NaN).
 */
export function krumScores(dist: Float64Array, k: number, f: number): Float64Array {
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`Krum needs a positive integer number of updates, got k = ${k}`);
  if (!Number.isSafeInteger(f) || f < 0) throw new RangeError(`Krum needs a non-negative integer f (Byzantine updates tolerated), got f = ${f}`);
  if (k <= 2 * f + 2) throw new RangeError(`Krum needs k > 2f + 2 updates: got k = ${k}, f = ${f} (needs k ≥ ${2 * f + 3})`);
  if (dist.length !== k * k) throw new RangeError(`dist must have k × k = ${k * k} entries for k = ${k} updates, got ${dist.length}`);
  const closest = k - f - 2;
  const scores = new Float64Array(k);
  const others = new Float64Array(k - 1);
  for (let i = 0; i < k; i++) {
    let c = 0;
    for (let j = 0; j < k; j++) {
      if (j === i) continue;
      const d = dist[i * k + j]!;
      if (!(d >= 0)) throw new RangeError(`squared distance dist[${i}·k + ${j}] must be ≥ 0, got ${d}`);
      others[c++] = d;
    }
    others.sort();
    let score = 0;
    for (let c2 = 0; c2 < closest; c2++) score += others[c2]!;
    scores[i] = score;
  }
  return scores;
}

/**
 * Multi-Krum selection (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with
 * Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017, Section 5): the indices of the m
 * updates with the lowest Krum scores, in increasing score order, ties broken by lower index.
 * m = 1 is Krum; the paper's Multi-Krum outputs the unweighted average of the selected updates.
 *
 * Complexity: O(k log k).
 *
 * @param scores the Krum scores from {@link krumScores}.
 * @param m how many updates to select, 1 ≤ m ≤ k.
 * @throws RangeError unless m is an integer in [1, k] and no score is NaN.
 */
export function multiKrumSelect(scores: Float64Array, m: number): number[] {
  const k = scores.length;
  if (!Number.isSafeInteger(m) || m < 1 || m > k) {
    throw new RangeError(`Multi-Krum m must be an integer with 1 ≤ m ≤ k = ${k} (the number of updates), got m = ${m}`);
  }
  for (let i = 0; i < k; i++) if (Number.isNaN(scores[i]!)) throw new RangeError(`Krum score ${i} is NaN`);
  const order = Array.from({ length: k }, (_, i) => i);
  order.sort((x, y) => scores[x]! - scores[y]! || x - y);
  return order.slice(0, m);
}

// ---------------------------------------------------------------------------------------------
// Internals

/** Coordinates per tile of the distance kernel: k slices × 4 KiB stay in L2 for k up to ~100. */
const DIST_TILE = 1024;

/** dist[at] += Σ_{t0 ≤ t < t1} (a[t] − b[t])², one sequential float64 sum. */
function pair1(dist: Float64Array, at: number, a: Float32Array, b: Float32Array, t0: number, t1: number): void {
  let s = dist[at]!;
  for (let t = t0; t < t1; t++) {
    const d = a[t]! - b[t]!;
    s += d * d;
  }
  dist[at] = s;
}

/** pair1 for four consecutive pairs (a, b0..b3) at dist[at..at+3]: four independent sums per pass. */
function pairs4(
  dist: Float64Array,
  at: number,
  a: Float32Array,
  b0: Float32Array,
  b1: Float32Array,
  b2: Float32Array,
  b3: Float32Array,
  t0: number,
  t1: number,
): void {
  let s0 = dist[at]!;
  let s1 = dist[at + 1]!;
  let s2 = dist[at + 2]!;
  let s3 = dist[at + 3]!;
  for (let t = t0; t < t1; t++) {
    const x = a[t]!;
    const d0 = x - b0[t]!;
    const d1 = x - b1[t]!;
    const d2 = x - b2[t]!;
    const d3 = x - b3[t]!;
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  dist[at] = s0;
  dist[at + 1] = s1;
  dist[at + 2] = s2;
  dist[at + 3] = s3;
}
