/**
 * @module Coordinate-wise median: Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed
 * Learning: Towards Optimal Statistical Rates." ICML 2018, Option I. Δ̂[j] = median over i of Δᵢ[j],
 * unweighted (each update is one vote per coordinate), exact order statistics.
 */
import { checkSlices, gather, roundLimit, select } from './order-statistics.ts';
import type { Strategy } from './strategy.ts';
import { forRanges, updateBased } from './update-based.ts';

export function median(): Strategy {
  return updateBased(
    'median',
    {},
    (r, out) => forRanges(r.numParams, r.rangeLength, (s, e) => coordinateMedian(r.read(s, e), out.subarray(s, e))),
    undefined,
    true,
  );
}

/**
 * Coordinate-wise median (Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning:
 * Towards Optimal Statistical Rates", ICML 2018, Option I):
 * `out[j]` = median over i of `slices[i][j]`; for even k, the mean of the two middle values
 * ((a + b) / 2 in float64, then rounded to float32). Exact order statistics.
 *
 * Unweighted, as in the paper: every update counts once whatever its examples count.
 *
 * Complexity: O(k) expected time per coordinate (quickselect with median-of-three pivots and a
 * three-way split, so runs of equal values such as all-zero coordinates cost one pass), O(k log k)
 * worst case (heapsort fallback after 2⌈log₂(k + 1)⌉ + 4 partition rounds), so crafted inputs cannot
 * make a coordinate quadratic. Memory: one Float64Array(k) scratch per call; nothing per coordinate.
 *
 * @param slices the same parameter range of each of the k ≥ 1 updates, all of length `out.length`.
 * @param out receives the median of each coordinate.
 * @throws RangeError when there are no slices or the lengths differ.
 */
export function coordinateMedian(slices: readonly Float32Array[], out: Float32Array): void {
  checkSlices(slices, out.length, 'coordinateMedian');
  const k = slices.length;
  const n = out.length;
  const s = new Float64Array(k);
  const h = k >> 1;
  const limit = roundLimit(k);
  const odd = (k & 1) === 1;
  for (let j = 0; j < n; j++) {
    gather(slices, j, s, k);
    select(s, 0, k - 1, h, limit);
    let v = s[h]!;
    if (!odd) {
      // after selection s[0..h-1] ≤ s[h]: the lower middle value is their maximum
      let lower = s[0]!;
      for (let i = 1; i < h; i++) if (s[i]! > lower) lower = s[i]!;
      v = (lower + v) / 2;
    }
    out[j] = v + 0; // -0 → +0
  }
}
