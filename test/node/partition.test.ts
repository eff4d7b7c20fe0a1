/** Seeded client partitions (IID, Dirichlet label skew, pathological shards) on the real MNIST t10k labels, plus the PRNG and Gamma/Dirichlet samplers under them. */
import { beforeAll, describe, expect, it } from 'vitest';
import { rng } from '../shared/random.ts';
import { loadMnistT10k, splitTrainTest } from '../sim/mnist.ts';
import { dirichlet, dirichletDraw, iid, labelCounts, logGamma, pathological, permutation } from '../sim/partition.ts';

/** Every index 0..n-1 appears in exactly one client's list, and each list is ascending. */
function expectExactCover(parts: number[][], n: number): void {
  const seen = new Uint8Array(n);
  for (const part of parts) {
    part.forEach((i, k) => {
      expect(Number.isInteger(i) && i >= 0 && i < n).toBe(true);
      if (k > 0) expect(i).toBeGreaterThan(part[k - 1] as number);
      seen[i] = (seen[i] as number) + 1;
    });
  }
  expect(seen.every((c) => c === 1)).toBe(true);
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Mean over clients of the share of the client's most common class (0.1 would be perfectly balanced 10-class data). */
function meanMaxClassFraction(labels: ArrayLike<number>, parts: number[][]): number {
  return mean(parts.map((p) => Math.max(...labelCounts(labels, p, 10)) / p.length));
}

/** Mean over clients of the total-variation distance between the client's label distribution and the global one. */
function meanTvFromGlobal(labels: ArrayLike<number>, parts: number[][]): number {
  const global = labelCounts(labels, undefined, 10).map((c) => c / labels.length);
  return mean(parts.map((p) => 0.5 * labelCounts(labels, p, 10).reduce((s, c, d) => s + Math.abs(c / p.length - (global[d] as number)), 0)));
}

function distinctLabels(labels: ArrayLike<number>, part: number[]): number {
  return new Set(part.map((i) => labels[i])).size;
}

/** 8,000 training labels of the real t10k set, as the simulations use them. */
let labels: Uint8Array;
/** All 10,000 t10k labels. */
let allLabels: Uint8Array;
beforeAll(() => {
  const ds = loadMnistT10k();
  allLabels = ds.labels;
  labels = splitTrainTest(ds, 2_000, 1).train.labels;
});

describe('rng', () => {
  it('is reproducible, uniform on [0, 1) and seed-dependent', () => {
    const a = rng(42);
    const b = rng(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(Array.from({ length: 10_000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mean(xs)).toBeCloseTo(0.5, 1);
    const deciles = new Array<number>(10).fill(0);
    for (const x of xs) deciles[Math.floor(x * 10)]! += 1;
    for (const d of deciles) expect(Math.abs(d - 1_000)).toBeLessThan(150);
    expect(rng(43)()).not.toBe(rng(42)());
  });

  it('permutation is a permutation', () => {
    expect(permutation(100, rng(1)).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('Gamma and Dirichlet samplers', () => {
  it.each([0.1, 0.5, 1, 2.5, 10])('Gamma(%s) has mean and variance equal to its shape', (shape) => {
    const random = rng(7);
    const n = 40_000;
    const xs = Array.from({ length: n }, () => Math.exp(logGamma(shape, random)));
    const m = mean(xs);
    const v = mean(xs.map((x) => (x - m) ** 2));
    // Within 5 standard errors: sd(mean) = sqrt(k/n); sd(variance) ≈ k·sqrt((6/k + 2)/n) from Gamma's excess kurtosis 6/k.
    expect(Math.abs(m - shape)).toBeLessThan(5 * Math.sqrt(shape / n));
    expect(Math.abs(v - shape)).toBeLessThan(5 * shape * Math.sqrt((6 / shape + 2) / n));
  });

  it('Dirichlet draws sum to 1, stay finite for tiny alpha and concentrate for large alpha', () => {
    const random = rng(3);
    for (const alpha of [0.001, 0.1, 1, 1_000]) {
      const p = dirichletDraw(10, alpha, random);
      expect(p.every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    expect(Math.max(...dirichletDraw(10, 0.001, random))).toBeGreaterThan(0.99);
    expect(Math.max(...dirichletDraw(10, 10_000, random))).toBeLessThan(0.11);
  });

  it('rejects non-positive shapes', () => {
    expect(() => logGamma(0, rng(1))).toThrow(/gamma shape must be a positive finite number, got 0/);
  });
});

describe('iid', () => {
  it('covers every index once in equal parts', () => {
    const parts = iid(labels, 10, 1);
    expectExactCover(parts, labels.length);
    expect(parts.map((p) => p.length)).toEqual(new Array(10).fill(800));
    // 8,000 over 7 clients: sizes differ by at most one.
    const seven = iid(labels, 7, 1).map((p) => p.length);
    expect(Math.max(...seven) - Math.min(...seven)).toBe(1);
    expect(seven.reduce((a, b) => a + b, 0)).toBe(8_000);
  });

  it('is deterministic for a seed and differs for another', () => {
    expect(iid(labels, 10, 5)).toEqual(iid(labels, 10, 5));
    expect(iid(labels, 10, 5)).not.toEqual(iid(labels, 10, 6));
  });

  it('gives every client close to the global label distribution', () => {
    const parts = iid(labels, 10, 1);
    const global = labelCounts(labels, undefined, 10).map((c) => c / labels.length);
    for (const p of parts) {
      // Per-class share sd is sqrt(0.1 · 0.9 / 800) ≈ 0.011; 0.05 is over 4 sd.
      labelCounts(labels, p, 10).forEach((c, d) => {
        expect(Math.abs(c / p.length - (global[d] as number))).toBeLessThan(0.05);
      });
    }
    expect(meanMaxClassFraction(labels, parts)).toBeLessThan(0.14);
  });

  it('rejects impossible client counts', () => {
    expect(() => iid(labels, 0, 1)).toThrow(/clients must be a positive integer, got 0/);
    expect(() => iid([0, 1, 2], 4, 1)).toThrow(/cannot give 4 clients 1 example\(s\) each from 3 examples/);
  });
});

describe('dirichlet', () => {
  it('covers every index once, each client above minPerClient', () => {
    for (const alpha of [0.1, 0.5, 100]) {
      const parts = dirichlet(labels, 10, alpha, 1);
      expectExactCover(parts, labels.length);
      expect(parts.every((p) => p.length >= 10)).toBe(true);
    }
    const parts = dirichlet(labels, 20, 0.5, 1, { minPerClient: 100 });
    expectExactCover(parts, labels.length);
    expect(Math.min(...parts.map((p) => p.length))).toBeGreaterThanOrEqual(100);
  });

  it('is deterministic for a seed and differs for another', () => {
    expect(dirichlet(labels, 10, 0.5, 9)).toEqual(dirichlet(labels, 10, 0.5, 9));
    expect(dirichlet(labels, 10, 0.5, 9)).not.toEqual(dirichlet(labels, 10, 0.5, 10));
  });

  it('alpha 0.5 is visibly label-skewed, alpha 0.1 more so', () => {
    const seeds = [1, 2, 3, 4, 5];
    const iidSkew = mean(seeds.map((s) => meanMaxClassFraction(labels, iid(labels, 10, s))));
    const skew05 = mean(seeds.map((s) => meanMaxClassFraction(labels, dirichlet(labels, 10, 0.5, s))));
    const skew01 = mean(seeds.map((s) => meanMaxClassFraction(labels, dirichlet(labels, 10, 0.1, s))));
    // IID sits at ≈ 0.12 (the largest class, digit 1, is 11 %); over 200 seeds alpha 0.5 never fell below 0.26.
    expect(iidSkew).toBeLessThan(0.13);
    expect(skew05).toBeGreaterThan(2 * iidSkew);
    expect(skew01).toBeGreaterThan(skew05 + 0.1);
  });

  it('approaches IID as alpha grows: per-client label mix as close to global as an IID split, or closer', () => {
    // Large alpha splits each class almost exactly 1/K per client (stratified), so it beats IID's sampling noise.
    const tvIid = meanTvFromGlobal(labels, iid(labels, 10, 1));
    const tvLarge = meanTvFromGlobal(labels, dirichlet(labels, 10, 1_000, 1));
    const tvHalf = meanTvFromGlobal(labels, dirichlet(labels, 10, 0.5, 1));
    expect(tvLarge).toBeLessThan(0.03);
    expect(tvLarge).toBeLessThanOrEqual(tvIid);
    expect(tvHalf).toBeGreaterThan(0.3);
    const sizes = dirichlet(labels, 10, 1_000, 1).map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThan(80);
  });

  it('throws a clear error when minPerClient cannot be met', () => {
    expect(() => dirichlet(labels, 10, 0.05, 1, { minPerClient: 700, maxAttempts: 20 })).toThrow(
      'dirichlet: no draw in 20 attempts gave every one of 10 clients at least 700 examples (alpha 0.05); lower minPerClient or raise alpha',
    );
    expect(() => dirichlet(labels, 10, 0.5, 1, { minPerClient: 801 })).toThrow(/cannot give 10 clients 801 example/);
    expect(() => dirichlet(labels, 10, 0, 1)).toThrow(/alpha must be a positive finite number, got 0/);
  });
});

describe('pathological', () => {
  it('covers every index once, 2 shards of 500 per client on the full t10k set', () => {
    const parts = pathological(allLabels, 10, 2, 1);
    expectExactCover(parts, allLabels.length);
    expect(parts.map((p) => p.length)).toEqual(new Array(10).fill(1_000));
  });

  it('gives each client exactly two whole shards of the label-sorted order', () => {
    // Reconstruct the construction: rank in (label, index) order; shard = floor(rank / 500).
    const sorted = Array.from(allLabels.keys()).sort((a, b) => (allLabels[a] as number) - (allLabels[b] as number) || a - b);
    const shardOf = new Array<number>(allLabels.length);
    sorted.forEach((index, rank) => {
      shardOf[index] = Math.floor(rank / 500);
    });
    const used = new Set<number>();
    for (const part of pathological(allLabels, 10, 2, 1)) {
      const shards = new Map<number, number>();
      for (const i of part) shards.set(shardOf[i] as number, (shards.get(shardOf[i] as number) ?? 0) + 1);
      expect([...shards.values()]).toEqual([500, 500]);
      for (const s of shards.keys()) {
        expect(used.has(s)).toBe(false);
        used.add(s);
      }
    }
    expect(used.size).toBe(20);
  });

  it('limits each client to the labels of its two shards (≤ 4, total bounded by the 9 straddling shards)', () => {
    // t10k class boundaries in sorted order fall at 980, 2115, 3147, 4157, 5139, 6031, 6989, 8017, 8991:
    // every class is larger than a 500-example shard, so a shard holds 1 or 2 labels, and since no
    // boundary is a multiple of 500, exactly 9 of the 20 shards hold 2. Hence a client has ≤ 4
    // labels, at most 9 clients have more than 2, and the per-client label counts sum to ≤ 29.
    for (const seed of [1, 2, 3, 4, 5]) {
      const distinct = pathological(allLabels, 10, 2, seed).map((p) => distinctLabels(allLabels, p));
      expect(Math.max(...distinct)).toBeLessThanOrEqual(4);
      expect(distinct.filter((d) => d > 2).length).toBeLessThanOrEqual(9);
      expect(distinct.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(29);
      expect(mean(distinct)).toBeLessThan(3);
    }
  });

  it('gives at most 2 labels per client when shards align with classes', () => {
    // 10 classes × 100 examples, 20 shards of 50: every shard is a single class.
    const aligned = Array.from({ length: 1_000 }, (_, i) => Math.floor(i / 100));
    const parts = pathological(aligned, 10, 2, 3);
    expectExactCover(parts, 1_000);
    for (const p of parts) expect(distinctLabels(aligned, p)).toBeLessThanOrEqual(2);
    // More shards per client spread it wider: 5 shards of 20 → up to 5 labels.
    for (const p of pathological(aligned, 10, 5, 3)) expect(distinctLabels(aligned, p)).toBeLessThanOrEqual(5);
  });

  it('is deterministic for a seed and differs for another; uneven sizes differ by at most one per shard', () => {
    expect(pathological(labels, 10, 2, 4)).toEqual(pathological(labels, 10, 2, 4));
    expect(pathological(labels, 10, 2, 4)).not.toEqual(pathological(labels, 10, 2, 5));
    const uneven = pathological(labels.subarray(0, 7_777), 7, 3, 1);
    expectExactCover(uneven, 7_777);
    const sizes = uneven.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(3);
  });

  it('rejects bad shard counts and labels', () => {
    expect(() => pathological(labels, 10, 0, 1)).toThrow(/shardsPerClient must be a positive integer, got 0/);
    expect(() => pathological([0, 1, 2], 2, 2, 1)).toThrow(/cannot give 2 clients 2 example\(s\) each from 3 examples/);
    expect(() => pathological([0, -1, 2, 3], 2, 2, 1)).toThrow(/label 1 is -1; labels must be non-negative integers/);
  });
});
