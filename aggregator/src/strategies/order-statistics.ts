/**
 * @module Exact order statistics and exact sums over k values per coordinate: the shared helpers of
 * the update-based strategies (median, trimmed mean; Krum's checks).
 */
//
// Robust rules need every update of a round, not a running sum. The aggregator keeps the round's
// k updates and walks the parameters range by range: for a range [start, end) it reads the slice of
// every update and calls these kernels on the slices, so memory stays bounded by k × range length.
// Every kernel gives bit-identical results however the parameters are split into ranges (the
// distance accumulator needs the ranges visited in increasing order).
//
// Weights: all four rules are unweighted, as in their papers. Examples counts are ignored by the
// median and the trimmed mean (each update is one vote per coordinate); Krum's scores ignore them
// too. After Multi-Krum selection the papers average the selected updates with equal weights; an
// examples-weighted average of the selection is a departure from the paper (and lets a Byzantine
// client that claims many examples pull harder), so the faithful choice is weight 1 per update.
//
// Inputs must be finite (the aggregator rejects non-finite updates before storing them); with NaN
// or ±Infinity the results are unspecified. Zeros are returned as +0, never -0.
//
// Performance: k = 100 updates, n = 1,000,000 parameters split in 64K-coordinate ranges, uniform
// random values, Node 22 / V8 on this 2-core AMD EPYC VM (shared, load ≈ 2.5), best of 3:
//   coordinateMedian                          1.34 s  (≈ 13 ns per value; gathering alone ≈ 0.25 s)
//   coordinateMedian, 90% all-zero columns    0.85 s
//   trimmedMean, beta = 0.1                   1.94 s
//   trimmedMean, beta = 0 (exact mean)        0.77 s
//   accumulatePairwiseSquaredDistances        3.6 s   (k(k−1)/2 = 4,950 pairs × n ≈ 0.73 ns each)
//   krumScores + multiKrumSelect              ≈ 1 ms
// With k = 10: median 0.16 s, trimmed mean (0.1) 0.20 s, distances 0.045 s.

/** Quickselect insertion-sorts ranges of at most this many + 1 values (measured: 16 is 2-3× faster than none for k ≤ 30). */
const INSERTION_CUTOFF = 16;

export function checkSlices(slices: readonly Float32Array[], n: number, what: string): void {
  if (slices.length === 0) throw new RangeError(`${what} needs at least one update slice`);
  for (let i = 0; i < slices.length; i++) {
    const len = slices[i]!.length;
    if (len !== n) throw new RangeError(`${what}: slice ${i} has ${len} values, expected ${n}`);
  }
}

export function gather(slices: readonly Float32Array[], j: number, s: Float64Array, k: number): void {
  for (let i = 0; i < k; i++) s[i] = slices[i]![j]!;
}

/** Partition rounds before quickselect falls back to heapsort (introselect). */
export function roundLimit(k: number): number {
  return 2 * Math.ceil(Math.log2(k + 1)) + 4;
}

/**
 * Rearranges s[lo..hi] so that s[t] holds the value it would have if s[lo..hi] were sorted, with
 * s[lo..t-1] ≤ s[t] ≤ s[t+1..hi]. Quickselect: median-of-three pivot, branch-free Lomuto pass
 * moving values < pivot to the front, then (only when t lies above them) a second pass gathering
 * the values equal to the pivot, so equal values never cause quadratic work. Ranges of at most
 * INSERTION_CUTOFF + 1 values are insertion-sorted; after `limit` rounds the remaining range is
 * heapsorted.
 */
export function select(s: Float64Array, lo: number, hi: number, t: number, limit: number): void {
  let rounds = 0;
  while (hi - lo > INSERTION_CUTOFF) {
    if (++rounds > limit) {
      heapsort(s, lo, hi);
      return;
    }
    const a = s[lo]!;
    const b = s[(lo + hi) >> 1]!;
    const c = s[hi]!;
    // biome-ignore lint/complexity/useMathMinMax: a median of three by comparisons only, so ±0 choose exactly as before
    const p = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let lt = lo;
    for (let i = lo; i <= hi; i++) {
      const x = s[i]!;
      s[i] = s[lt]!;
      s[lt] = x;
      lt += +(x < p);
    }
    if (t < lt) {
      hi = lt - 1;
      continue;
    }
    let eq = lt;
    for (let i = lt; i <= hi; i++) {
      const x = s[i]!;
      s[i] = s[eq]!;
      s[eq] = x;
      eq += +(x === p);
    }
    if (t < eq) return; // s[lt..eq-1] all equal p
    lo = eq;
  }
  for (let i = lo + 1; i <= hi; i++) {
    const x = s[i]!;
    let j = i - 1;
    while (j >= lo && s[j]! > x) {
      s[j + 1] = s[j]!;
      j--;
    }
    s[j + 1] = x;
  }
}

/** Sorts s[lo..hi] ascending in place; O(m log m) worst case. */
function heapsort(s: Float64Array, lo: number, hi: number): void {
  const m = hi - lo + 1;
  for (let i = (m >> 1) - 1; i >= 0; i--) siftDown(s, lo, i, m);
  for (let end = m - 1; end > 0; end--) {
    const x = s[lo]!;
    s[lo] = s[lo + end]!;
    s[lo + end] = x;
    siftDown(s, lo, 0, end);
  }
}

function siftDown(s: Float64Array, lo: number, i: number, m: number): void {
  const x = s[lo + i]!;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && s[lo + c + 1]! > s[lo + c]!) c++;
    if (!(s[lo + c]! > x)) break;
    s[lo + i] = s[lo + c]!;
    i = c;
  }
  s[lo + i] = x;
}

/**
 * The exact sum of s[from..to-1], correctly rounded to float64 (round half to even), independent of
 * the order of the values: Shewchuk's adaptive non-overlapping partials with error-free two-sums,
 * as in Python's `math.fsum`. Each value adds at most one partial, so `partials` needs
 * to − from + 1 entries. Finite inputs only.
 */
export function exactSum(s: Float64Array, from: number, to: number, partials: Float64Array): number {
  let np = 0;
  for (let q = from; q < to; q++) {
    let x = s[q]!;
    let i = 0;
    for (let r = 0; r < np; r++) {
      const y = partials[r]!;
      const hi = x + y;
      const bv = hi - x;
      const lo = x - (hi - bv) + (y - bv); // two-sum: hi + lo = x + y exactly
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials[i] = x;
    np = i + 1;
  }
  if (np === 0) return 0;
  // Add the partials from the largest down until the sum becomes inexact, then correct a
  // half-way case that the remaining partials push past the tie (as math.fsum does).
  let hi = partials[--np]!;
  let lo = 0;
  while (np > 0) {
    const x = hi;
    const y = partials[--np]!;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  if (np > 0 && ((lo < 0 && partials[np - 1]! < 0) || (lo > 0 && partials[np - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi;
}
