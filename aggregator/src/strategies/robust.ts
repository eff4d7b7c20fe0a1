/** @module Byzantine-robust aggregation kernels (coordinate-wise median, trimmed mean, Krum, Multi-Krum) over parameter ranges. */
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

// ---------------------------------------------------------------------------------------------
// Coordinate-wise median and trimmed mean

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
  const k = slices.length;
  const b = trimmedCount(k, beta);
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

// ---------------------------------------------------------------------------------------------
// Krum and Multi-Krum

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

/** Quickselect insertion-sorts ranges of at most this many + 1 values (measured: 16 is 2-3× faster than none for k ≤ 30). */
const INSERTION_CUTOFF = 16;

/** Coordinates per tile of the distance kernel: k slices × 4 KiB stay in L2 for k up to ~100. */
const DIST_TILE = 1024;

function checkSlices(slices: readonly Float32Array[], n: number, what: string): void {
  if (slices.length === 0) throw new RangeError(`${what} needs at least one update slice`);
  for (let i = 0; i < slices.length; i++) {
    const len = slices[i]!.length;
    if (len !== n) throw new RangeError(`${what}: slice ${i} has ${len} values, expected ${n}`);
  }
}

function gather(slices: readonly Float32Array[], j: number, s: Float64Array, k: number): void {
  for (let i = 0; i < k; i++) s[i] = slices[i]![j]!;
}

/** Partition rounds before quickselect falls back to heapsort (introselect). */
function roundLimit(k: number): number {
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
function select(s: Float64Array, lo: number, hi: number, t: number, limit: number): void {
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
function exactSum(s: Float64Array, from: number, to: number, partials: Float64Array): number {
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
