/**
 * The update-based strategies' kernels (median, trimmed mean, Krum) against values computed by hand (Prepare / Execute / Assert), against
 * naive sort-based references on seeded random data (bit-exact), and for range splitting.
 */
import { describe, expect, it } from 'vitest';
import { rng } from '#test/random.ts';
import { accumulatePairwiseSquaredDistances, krumScores, multiKrumSelect } from './krum.ts';
import { coordinateMedian } from './median.ts';
import { trimmedCount, trimmedMean } from './trimmed-mean.ts';

// ---------------------------------------------------------------------------------------------
// Helpers and naive references

type Kind = 'uniform' | 'ties' | 'zeros' | 'wide' | 'outliers' | 'cancel';

/**
 * k updates of n values: uniform, heavy ties, mostly zeros (±0), wide magnitudes incl. denormals,
 * 30% outliers, or small values among huge ±2^40..2^59 that cancel (float64 sums depend on order).
 */
function randomUpdates(k: number, n: number, seed: number, kind: Kind): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: k }, (_, i) => {
    const u = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const x = r();
      switch (kind) {
        case 'uniform':
          u[j] = x * 2 - 1;
          break;
        case 'ties':
          u[j] = Math.floor(x * 5) - 2;
          break;
        case 'zeros':
          u[j] = x < 0.8 ? (x < 0.4 ? -0 : 0) : r() - 0.5;
          break;
        case 'wide':
          u[j] = (r() < 0.5 ? -1 : 1) * (x < 0.05 ? 1e-40 : (1 + r()) * 2 ** Math.floor(r() * 120 - 60));
          break;
        case 'outliers':
          u[j] = i % 10 < 3 ? (r() - 0.5) * 1e30 : x - 0.5;
          break;
        case 'cancel':
          u[j] = x < 0.5 ? (r() < 0.5 ? -1 : 1) * 2 ** (40 + Math.floor(r() * 20)) : r() - 0.5;
          break;
      }
    }
    return u;
  });
}

function column(slices: readonly Float32Array[], j: number): number[] {
  return slices.map((s) => s[j]!).sort((a, b) => a - b);
}

/** The exact sum of float32 values (every float32 is an integer multiple of 2^-149), rounded once to float64. */
function exactSum(values: readonly number[]): number {
  let s = 0n;
  for (const v of values) s += BigInt(v * 2 ** 149);
  return Number(s) * 2 ** -149;
}

function naiveMedian(slices: readonly Float32Array[]): Float32Array {
  const n = slices[0]!.length;
  const k = slices.length;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const c = column(slices, j);
    out[j] = (k % 2 === 1 ? c[(k - 1) / 2]! : (c[k / 2 - 1]! + c[k / 2]!) / 2) + 0;
  }
  return out;
}

function naiveTrimmedMean(slices: readonly Float32Array[], beta: number): Float32Array {
  const n = slices[0]!.length;
  const k = slices.length;
  const b = Math.floor(beta * k);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = exactSum(column(slices, j).slice(b, k - b)) / (k - 2 * b) + 0;
  return out;
}

/** Squared distances by the definition, each pair one float64 sum over the coordinates in order. */
function naiveDistances(updates: readonly Float32Array[]): Float64Array {
  const k = updates.length;
  const d = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      if (i === j) continue;
      const a = updates[Math.min(i, j)]!;
      const b = updates[Math.max(i, j)]!;
      let s = 0;
      for (let t = 0; t < a.length; t++) {
        const diff = a[t]! - b[t]!;
        s += diff * diff;
      }
      d[i * k + j] = s;
    }
  }
  return d;
}

function naiveScores(d: Float64Array, k: number, f: number): number[] {
  return Array.from({ length: k }, (_, i) => {
    const row = Array.from({ length: k }, (_, j) => d[i * k + j]!)
      .filter((_, j) => j !== i)
      .sort((a, b) => a - b);
    return row.slice(0, k - f - 2).reduce((s, x) => s + x, 0);
  });
}

/** Same bits, element by element (so -0 ≠ +0), with the first difference in the message. */
function expectSameBits(actual: Float32Array | Float64Array, expected: Float32Array | Float64Array): void {
  expect(actual.length).toBe(expected.length);
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      first = i;
      break;
    }
  }
  expect(first, first >= 0 ? `element ${first}: ${actual[first]} vs ${expected[first]}` : '').toBe(-1);
}

/** Runs `kernel` on the ranges between consecutive `cuts` (0 … n) and returns the assembled output. */
function byRanges(updates: readonly Float32Array[], cuts: readonly number[], kernel: (slices: Float32Array[], out: Float32Array) => void): Float32Array {
  const out = new Float32Array(updates[0]!.length);
  for (let r = 0; r + 1 < cuts.length; r++) {
    const [start, end] = [cuts[r]!, cuts[r + 1]!];
    kernel(
      updates.map((u) => u.subarray(start, end)),
      out.subarray(start, end),
    );
  }
  return out;
}

const f32 = (xs: number[]) => Float32Array.from(xs);

// ---------------------------------------------------------------------------------------------
// Coordinate-wise median and trimmed mean

describe('coordinate-wise median and trimmed mean (Yin et al. 2018)', () => {
  // Prepare: k = 5 updates of 4 parameters; columns (the values per coordinate):
  //   c0 = [1, 2, 3, 1000, 0]        sorted 0, 1, 2, 3, 1000
  //   c1 = [-1, -2, -4, -3, 500]     sorted -4, -3, -2, -1, 500
  //   c2 = [0, 1, 5, -1e6, 1e6]      sorted -1e6, 0, 1, 5, 1e6
  //   c3 = [3, 3, 600, 600, 6]       sorted 3, 3, 6, 600, 600   (two outliers on one side)
  const five = [f32([1, -1, 0, 3]), f32([2, -2, 1, 3]), f32([3, -4, 5, 600]), f32([1000, -3, -1e6, 600]), f32([0, 500, 1e6, 6])];

  it('median of k = 5 ignores one outlier per coordinate', () => {
    const out = new Float32Array(4);
    coordinateMedian(five, out);
    // the third of five sorted values
    expect(Array.from(out)).toEqual([2, -2, 1, 6]);
  });

  it('trimmed mean with beta = 0.2 drops one value from each end', () => {
    const out = new Float32Array(4);
    trimmedMean(five, 0.2, out);
    // b = ⌊0.2·5⌋ = 1: c0 (1+2+3)/3 = 2, c1 (-3-2-1)/3 = -2, c2 (0+1+5)/3 = 2, c3 (3+6+600)/3 = 203
    expect(Array.from(out)).toEqual([2, -2, 2, 203]);
  });

  it('trimmed mean with beta = 0 is the plain mean, and with b = (k-1)/2 the median', () => {
    const mean = new Float32Array(4);
    trimmedMean(five, 0, mean);
    // 1006/5, 490/5, 6/5, 1212/5
    expect(Array.from(mean)).toEqual([Math.fround(201.2), 98, Math.fround(1.2), Math.fround(242.4)]);
    const mid = new Float32Array(4);
    trimmedMean(five, 0.4, mid); // b = 2
    expect(Array.from(mid)).toEqual([2, -2, 1, 6]);
  });

  it('median of even k averages the two middle values', () => {
    // Prepare: the first four updates; sorted c0 = 1,2,3,1000; c1 = -4,-3,-2,-1; c2 = -1e6,0,1,5; c3 = 3,3,600,600
    const four = five.slice(0, 4);
    const out = new Float32Array(4);
    // Execute
    coordinateMedian(four, out);
    // Assert: (2+3)/2, (-3-2)/2, (0+1)/2, (3+600)/2
    expect(Array.from(out)).toEqual([2.5, -2.5, 0.5, 301.5]);
    // b = ⌊0.25·4⌋ = 1 leaves the same two middle values
    trimmedMean(four, 0.25, out);
    expect(Array.from(out)).toEqual([2.5, -2.5, 0.5, 301.5]);
  });

  it('k = 1 and k = 2', () => {
    const out = new Float32Array(2);
    coordinateMedian([f32([7, -0])], out);
    expect(Array.from(out)).toEqual([7, 0]);
    expect(Object.is(out[1], 0)).toBe(true); // -0 comes back as +0
    coordinateMedian([f32([1, 4]), f32([2, -4])], out);
    expect(Array.from(out)).toEqual([1.5, 0]);
  });

  it('sums the kept values exactly, whatever their order', () => {
    // Prepare: one coordinate with 2^60, 1, -2^60: left to right in float64 gives (2^60 + 1) - 2^60 = 0
    const updates = [f32([2 ** 60]), f32([1]), f32([-(2 ** 60)])];
    const out = new Float32Array(1);
    // Execute: beta = 0, the mean of all three
    trimmedMean(updates, 0, out);
    // Assert: the exact sum is 1, so the mean is 1/3
    expect(out[0]).toBe(Math.fround(1 / 3));
    trimmedMean([updates[1]!, updates[0]!, updates[2]!], 0, out);
    expect(out[0]).toBe(Math.fround(1 / 3));
  });

  it('leaves its inputs unchanged', () => {
    const copy = five.map((u) => u.slice());
    coordinateMedian(five, new Float32Array(4));
    trimmedMean(five, 0.2, new Float32Array(4));
    for (let i = 0; i < five.length; i++) expect(Array.from(five[i]!)).toEqual(Array.from(copy[i]!));
  });

  describe('against a sort-based reference (seeded random, bit-exact)', () => {
    const kinds: Kind[] = ['uniform', 'ties', 'zeros', 'wide', 'outliers', 'cancel'];
    const ks = [1, 2, 3, 4, 5, 8, 17, 18, 33, 64, 100];
    it.each(kinds)('%s values, k from 1 to 100', (kind) => {
      for (const k of ks) {
        // Prepare
        const n = 300;
        const updates = randomUpdates(k, n, 1000 * k + kinds.indexOf(kind), kind);
        const out = new Float32Array(n);
        // Execute / Assert: median
        coordinateMedian(updates, out);
        expectSameBits(out, naiveMedian(updates));
        // trimmed means over the whole beta range
        for (const beta of [0, 0.1, 0.2, 0.3, 0.49]) {
          trimmedMean(updates, beta, out);
          expectSameBits(out, naiveTrimmedMean(updates, beta));
        }
      }
    });

    it('ordered, reversed, sawtooth and constant columns (quickselect worst cases)', () => {
      const k = 100;
      const n = 6;
      const updates = Array.from({ length: k }, (_, i) => f32([i, k - i, i % 7, (i * 37) % k, 5, i < 50 ? 0 : i]));
      const out = new Float32Array(n);
      coordinateMedian(updates, out);
      expectSameBits(out, naiveMedian(updates));
      expect(Array.from(out)).toEqual([49.5, 50.5, 3, 49.5, 5, 25]);
      for (const beta of [0, 0.1, 0.25, 0.45]) {
        trimmedMean(updates, beta, out);
        expectSameBits(out, naiveTrimmedMean(updates, beta));
      }
    });
  });

  it('gives identical results however the parameters are split into ranges', () => {
    // Prepare
    const n = 1000;
    const updates = randomUpdates(9, n, 7, 'outliers');
    const splits = [
      [0, n],
      [0, 1, n],
      [0, 333, 334, 999, n],
      [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, n],
    ];
    const median = (s: Float32Array[], o: Float32Array) => coordinateMedian(s, o);
    const trimmed = (s: Float32Array[], o: Float32Array) => trimmedMean(s, 0.2, o);
    // Execute / Assert
    const m0 = byRanges(updates, splits[0]!, median);
    const t0 = byRanges(updates, splits[0]!, trimmed);
    for (const cuts of splits.slice(1)) {
      expectSameBits(byRanges(updates, cuts, median), m0);
      expectSameBits(byRanges(updates, cuts, trimmed), t0);
    }
  });

  it('does not depend on the order of the updates', () => {
    const updates = randomUpdates(12, 500, 11, 'wide');
    const shuffled = [...updates].reverse();
    const [a, b] = [new Float32Array(500), new Float32Array(500)];
    coordinateMedian(updates, a);
    coordinateMedian(shuffled, b);
    expectSameBits(a, b);
    trimmedMean(updates, 0.25, a);
    trimmedMean(shuffled, 0.25, b);
    expectSameBits(a, b);
  });

  it('trimmedCount is ⌊beta·k⌋', () => {
    expect(trimmedCount(5, 0.2)).toBe(1);
    expect(trimmedCount(100, 0.1)).toBe(10);
    expect(trimmedCount(10, 0.49)).toBe(4);
    expect(trimmedCount(3, 0.3)).toBe(0);
    expect(trimmedCount(100, 0.29)).toBe(28); // 0.29 · 100 = 28.999999999999996 in float64
  });

  it('rejects beta outside [0, 0.5), no updates and mismatched lengths with RangeError', () => {
    const out = new Float32Array(4);
    for (const beta of [0.5, 0.7, -0.01, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => trimmedMean(five, beta, out)).toThrow(RangeError);
      expect(() => trimmedMean(five, beta, out)).toThrow(`trimmed mean beta must satisfy 0 ≤ beta < 0.5, got ${beta}`);
    }
    expect(() => coordinateMedian([], out)).toThrow(new RangeError('coordinateMedian needs at least one update slice'));
    expect(() => trimmedMean([], 0.1, out)).toThrow(RangeError);
    expect(() => coordinateMedian([f32([1, 2, 3, 4]), f32([1, 2, 3])], out)).toThrow(new RangeError('coordinateMedian: slice 1 has 3 values, expected 4'));
    expect(() => trimmedMean(five, 0.1, new Float32Array(3))).toThrow('trimmedMean: slice 0 has 4 values, expected 3');
  });
});

// ---------------------------------------------------------------------------------------------
// Krum and Multi-Krum

describe('Krum and Multi-Krum (Blanchard et al. 2017)', () => {
  // Prepare: k = 5 two-parameter updates, u4 an obvious outlier.
  const updates = [f32([1, 1]), f32([0, 1]), f32([1, 0]), f32([2, 2]), f32([-20, 30])];
  // Squared distances by hand:
  //   d01 = 1, d02 = 1, d03 = 1+1 = 2, d04 = 21²+29² = 441+841 = 1282
  //   d12 = 1+1 = 2, d13 = 4+1 = 5, d14 = 20²+29² = 400+841 = 1241
  //   d23 = 1+4 = 5, d24 = 21²+30² = 441+900 = 1341
  //   d34 = 22²+28² = 484+784 = 1268
  const expectedDist = [
    [0, 1, 1, 2, 1282],
    [1, 0, 2, 5, 1241],
    [1, 2, 0, 5, 1341],
    [2, 5, 5, 0, 1268],
    [1282, 1241, 1341, 1268, 0],
  ].flat();

  it('accumulates the pairwise squared distances', () => {
    const dist = new Float64Array(25);
    accumulatePairwiseSquaredDistances(updates, dist);
    expect(Array.from(dist)).toEqual(expectedDist);
  });

  it('scores each update by its k − f − 2 closest others and selects the lowest', () => {
    // Prepare: f = 1, so each score is the sum of the 5 − 1 − 2 = 2 smallest distances to others
    const dist = Float64Array.from(expectedDist);
    // Execute
    const scores = krumScores(dist, 5, 1);
    // Assert: s0 = 1+1, s1 = 1+2, s2 = 1+2, s3 = 2+5, s4 = 1241+1268
    expect(Array.from(scores)).toEqual([2, 3, 3, 7, 2509]);
    expect(multiKrumSelect(scores, 1)).toEqual([0]); // Krum
    expect(multiKrumSelect(scores, 3)).toEqual([0, 1, 2]); // 1 and 2 tie: lower index first
    expect(multiKrumSelect(scores, 4)).toEqual([0, 1, 2, 3]); // the outlier is never chosen
    expect(multiKrumSelect(scores, 5)).toEqual([0, 1, 2, 3, 4]);
  });

  it('selection follows the updates when they are reordered', () => {
    const order = [4, 3, 2, 1, 0];
    const dist = new Float64Array(25);
    accumulatePairwiseSquaredDistances(
      order.map((i) => updates[i]!),
      dist,
    );
    const scores = krumScores(dist, 5, 1);
    expect(Array.from(scores)).toEqual([2509, 7, 3, 3, 2]);
    expect(multiKrumSelect(scores, 3)).toEqual([4, 2, 3]);
  });

  it('breaks score ties by lower index', () => {
    expect(multiKrumSelect(Float64Array.from([3, 1, 3, 1]), 3)).toEqual([1, 3, 0]);
    expect(multiKrumSelect(Float64Array.from([5, 5, 5]), 2)).toEqual([0, 1]);
  });

  it('accumulated over two ranges equals one pass, bit for bit', () => {
    // Prepare: k = 9 (one four-pair block plus tail pairs per row), n spanning several tiles
    const n = 5000;
    const us = randomUpdates(9, n, 3, 'wide');
    const one = new Float64Array(81);
    accumulatePairwiseSquaredDistances(us, one);
    for (const cut of [1, 1024, 2500, 4999]) {
      // Execute
      const two = new Float64Array(81);
      accumulatePairwiseSquaredDistances(
        us.map((u) => u.subarray(0, cut)),
        two,
      );
      accumulatePairwiseSquaredDistances(
        us.map((u) => u.subarray(cut)),
        two,
      );
      // Assert
      expectSameBits(two, one);
    }
    // many small ranges
    const many = new Float64Array(81);
    for (let s = 0; s < n; s += 777) {
      accumulatePairwiseSquaredDistances(
        us.map((u) => u.subarray(s, Math.min(n, s + 777))),
        many,
      );
    }
    expectSameBits(many, one);
  });

  it('matches the naive definition on random data (distances, scores, selection)', () => {
    for (const [k, f, kind] of [
      [3, 0, 'uniform'],
      [5, 1, 'outliers'],
      [8, 2, 'ties'],
      [13, 5, 'wide'],
      [30, 10, 'outliers'],
    ] as const) {
      // Prepare
      const us = randomUpdates(k, 700, 100 + k, kind);
      const dist = new Float64Array(k * k);
      // Execute
      accumulatePairwiseSquaredDistances(us, dist);
      const scores = krumScores(dist, k, f);
      // Assert
      const ref = naiveDistances(us);
      expectSameBits(dist, ref);
      expect(Array.from(scores)).toEqual(naiveScores(ref, k, f));
      const m = k - f;
      const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
      expect(multiKrumSelect(scores, m)).toEqual(order.slice(0, m));
    }
  });

  it('Multi-Krum with m = k − f rejects colluding outliers', () => {
    // Prepare: 7 honest updates near 0, 3 identical Byzantine updates far away, f = 3
    const n = 200;
    const honest = randomUpdates(7, n, 42, 'uniform');
    const byzantine = Array.from({ length: 3 }, () => new Float32Array(n).fill(50));
    const us = [honest[0]!, byzantine[0]!, honest[1]!, honest[2]!, byzantine[1]!, honest[3]!, honest[4]!, byzantine[2]!, honest[5]!, honest[6]!];
    const dist = new Float64Array(100);
    // Execute
    for (let s = 0; s < n; s += 64)
      accumulatePairwiseSquaredDistances(
        us.map((u) => u.subarray(s, s + 64)),
        dist,
      );
    const selected = multiKrumSelect(krumScores(dist, 10, 3), 7);
    // Assert
    expect([...selected].sort((a, b) => a - b)).toEqual([0, 2, 3, 5, 6, 8, 9]);
  });

  it('rejects k ≤ 2f + 2, bad m, bad shapes and NaN with RangeError', () => {
    const d4 = new Float64Array(16);
    expect(() => krumScores(d4, 4, 1)).toThrow(new RangeError('Krum needs k > 2f + 2 updates: got k = 4, f = 1 (needs k ≥ 5)'));
    expect(() => krumScores(new Float64Array(4), 2, 0)).toThrow(RangeError);
    expect(() => krumScores(new Float64Array(25), 5, -1)).toThrow(RangeError);
    expect(() => krumScores(new Float64Array(25), 5, 0.5)).toThrow(RangeError);
    expect(() => krumScores(new Float64Array(24), 5, 1)).toThrow('dist must have k × k = 25 entries for k = 5 updates, got 24');
    const bad = new Float64Array(25);
    bad[1] = Number.NaN;
    expect(() => krumScores(bad, 5, 1)).toThrow(RangeError);

    const scores = Float64Array.from([1, 2, 3, 4, 5]);
    expect(() => multiKrumSelect(scores, 6)).toThrow(new RangeError('Multi-Krum m must be an integer with 1 ≤ m ≤ k = 5 (the number of updates), got m = 6'));
    expect(() => multiKrumSelect(scores, 0)).toThrow(RangeError);
    expect(() => multiKrumSelect(scores, 1.5)).toThrow(RangeError);
    expect(() => multiKrumSelect(Float64Array.from([1, Number.NaN]), 1)).toThrow(RangeError);

    expect(() => accumulatePairwiseSquaredDistances([], new Float64Array(0))).toThrow(RangeError);
    expect(() => accumulatePairwiseSquaredDistances(updates, new Float64Array(16))).toThrow('dist must have k × k = 25 entries for k = 5 updates, got 16');
    expect(() => accumulatePairwiseSquaredDistances([f32([1, 2]), f32([1])], new Float64Array(4))).toThrow(RangeError);
  });
});
