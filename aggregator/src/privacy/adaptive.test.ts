import { describe, expect, it } from 'vitest';
import { SecureGaussian } from '#protocol/dp.ts';
import { rng } from '../../../test/shared/random.ts';
import { defaultCountNoise, nextClipNorm, updateNoiseMultiplier } from './adaptive.ts';

/**
 * Rounds of adaptive clipping on a synthetic population: N clients with log-normal update norms of
 * median `median`, Poisson-sampled at rate q, each reporting whether its norm is ≤ C.
 */
function track(start: number, median: number, rounds: number, seed: number): number[] {
  const random = rng(seed);
  const gauss = new SecureGaussian({ next: random });
  const N = 1000;
  const q = 0.1;
  const m = N * q;
  const norms = Array.from({ length: N }, () => median * Math.exp(0.8 * gauss.standard()));
  const p = { targetQuantile: 0.5, learningRate: 0.2, countNoise: defaultCountNoise(m) };
  let c = start;
  const path: number[] = [];
  for (let t = 0; t < rounds; t++) {
    let unclipped = 0;
    for (const n of norms) if (random() < q && n <= c) unclipped++;
    const noised = (unclipped + p.countNoise * gauss.standard()) / m;
    c = nextClipNorm(c, noised, p);
    path.push(c);
  }
  return path;
}

/** The sample median of the population `track` draws (same seed, same norms). */
function populationMedian(median: number, seed: number): number {
  const gauss = new SecureGaussian({ next: rng(seed) });
  const norms = Array.from({ length: 1000 }, () => median * Math.exp(0.8 * gauss.standard())).sort((a, b) => a - b);
  return (norms[499]! + norms[500]!) / 2;
}

describe('adaptive clipping (Andrew et al. 2021)', () => {
  it('moves the clip norm toward the target quantile: down when too many clients are unclipped, up when too few', () => {
    const p = { targetQuantile: 0.5, learningRate: 0.2 };
    expect(nextClipNorm(1, 0.9, p)).toBeLessThan(1); // 90% unclipped > 50%: C is above the median
    expect(nextClipNorm(1, 0.1, p)).toBeGreaterThan(1);
    expect(nextClipNorm(1, 0.5, p)).toBe(1);
    expect(nextClipNorm(2, 1, p)).toBeCloseTo(2 * Math.exp(-0.1), 12);
  });

  for (const [label, factor] of [
    ['from 10× below', 0.1],
    ['from 10× above', 10],
  ] as const) {
    it(`converges to within ±10% of the norms' median ${label}`, () => {
      const seed = 11;
      const median = populationMedian(3, seed);
      const path = track(3 * factor, 3, 300, seed);
      const tail = path.slice(-100);
      const geoMean = Math.exp(tail.reduce((a, c) => a + Math.log(c), 0) / tail.length);
      expect(geoMean / median).toBeGreaterThan(0.9);
      expect(geoMean / median).toBeLessThan(1.1);
      for (const c of tail) expect(Math.abs(c / median - 1)).toBeLessThan(0.1);
      // It really moved: the first rounds head the right way.
      expect(Math.sign(path[20]! - 3 * factor)).toBe(factor < 1 ? 1 : -1);
    });
  }

  it('splits the noise so the update and the count together spend the declared z', () => {
    const z = 1.1;
    const sb = 5;
    const zd = updateNoiseMultiplier(z, sb)!;
    expect(zd).toBeGreaterThan(z);
    expect(zd ** -2 + (2 * sb) ** -2).toBeCloseTo(z ** -2, 12);
    expect(updateNoiseMultiplier(2, 1)).toBeNull(); // 2σ_b ≤ z: the count alone would spend more than z allows
  });
});
