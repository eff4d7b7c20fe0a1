import { afterEach, describe, expect, it, vi } from 'vitest';
import { rng } from '../../../test/shared/random.ts';
import { CryptoUniform, clipToNorm, l2Norm, SecureGaussian, type UniformSource } from './dp.ts';

/** A seeded uniform source, for reproducible inputs (32-bit uniforms are plenty here). */
const seededUniform = (seed: number): UniformSource => ({ next: rng(seed) });

describe('clipToNorm', () => {
  it('leaves the float32 norm at or below the bound, for any scale of input', () => {
    const rng = seededUniform(7);
    let clippedCount = 0;
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rng.next() * 5000);
      const delta = new Float32Array(n);
      const magnitude = 10 ** (rng.next() * 12 - 6);
      for (let i = 0; i < n; i++) delta[i] = (rng.next() - 0.5) * magnitude;
      const bound = 10 ** (rng.next() * 6 - 3);
      const before = l2Norm(delta);
      const copy = delta.slice();
      const { norm, clipped } = clipToNorm(delta, bound);
      expect(norm).toBe(before);
      expect(clipped).toBe(before > bound);
      expect(l2Norm(delta)).toBeLessThanOrEqual(bound);
      if (clipped) {
        clippedCount++;
        // Scaled, not distorted: the direction is kept and the norm lands at the bound (within float32 rounding).
        expect(l2Norm(delta)).toBeGreaterThan(bound * (1 - 1e-5));
        const k = delta[0]! / copy[0]!;
        if (Number.isFinite(k) && copy[0] !== 0) expect(k).toBeCloseTo(bound / before, 4);
      } else {
        expect(delta).toEqual(copy);
      }
    }
    expect(clippedCount).toBeGreaterThan(50);
  });

  it('holds the bound where float32 rounding alone would exceed it', () => {
    // Values whose scaled float32 rounding goes up: without the shrink step the norm would read above S.
    let exceeded = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const rng = seededUniform(seed);
      const delta = Float32Array.from({ length: 64 }, () => 1 + rng.next());
      const bound = l2Norm(delta) / 3;
      const naive = delta.map((x) => x * (bound / l2Norm(delta)));
      if (l2Norm(naive) > bound) exceeded++;
      clipToNorm(delta, bound);
      expect(l2Norm(delta)).toBeLessThanOrEqual(bound);
    }
    expect(exceeded).toBeGreaterThan(0); // the case the shrink step exists for does occur
  });

  it('refuses a bound that is not a positive finite number', () => {
    expect(() => clipToNorm(new Float32Array(3), 0)).toThrow(RangeError);
    expect(() => clipToNorm(new Float32Array(3), Number.NaN)).toThrow(RangeError);
  });
});

describe('SecureGaussian', () => {
  afterEach(() => vi.restoreAllMocks());

  it('draws from crypto.getRandomValues, never Math.random', () => {
    const random = vi.spyOn(Math, 'random').mockImplementation(() => {
      throw new Error('Math.random used');
    });
    const secure = vi.spyOn(crypto, 'getRandomValues');
    const out = new Float64Array(50_000);
    new SecureGaussian().addTo(out, 1);
    expect(random).not.toHaveBeenCalled();
    expect(secure).toHaveBeenCalled();
    expect(new Set(out).size).toBe(out.length); // no repeats: 53-bit uniforms
  });

  it('has mean 0 and variance σ² within 5-sigma confidence bounds over 10⁶ draws', () => {
    const n = 1_000_000;
    const sigma = 2.5;
    const out = new Float64Array(n);
    new SecureGaussian(new CryptoUniform()).addTo(out, sigma);
    let sum = 0;
    for (const x of out) sum += x;
    const mean = sum / n;
    let m2 = 0;
    let m4 = 0;
    let beyond2 = 0;
    for (const x of out) {
      const d = x - mean;
      m2 += d * d;
      m4 += d ** 4;
      if (Math.abs(x) > 2 * sigma) beyond2++;
    }
    const variance = m2 / (n - 1);
    // Standard errors: mean σ/√n; sample variance σ²·√(2/(n−1)); P(|X| > 2σ) = 0.0455 binomial.
    expect(Math.abs(mean)).toBeLessThan((5 * sigma) / Math.sqrt(n));
    expect(Math.abs(variance - sigma ** 2)).toBeLessThan(5 * sigma ** 2 * Math.sqrt(2 / (n - 1)));
    expect(m4 / n / variance ** 2).toBeCloseTo(3, 1); // Gaussian kurtosis
    const p = 0.0455003;
    expect(Math.abs(beyond2 / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
  });

  it('adds to float64 and float32 targets, and σ = 0 adds nothing', () => {
    const g = new SecureGaussian(seededUniform(3));
    const t64 = new Float64Array([1, 2, 3]);
    g.addTo(t64, 0);
    expect([...t64]).toEqual([1, 2, 3]);
    const t32 = new Float32Array(1000).fill(5);
    g.addTo(t32, 0.1);
    const mean = t32.reduce((a, b) => a + b, 0) / t32.length;
    expect(mean).toBeGreaterThan(4.98);
    expect(mean).toBeLessThan(5.02);
    expect(() => g.addTo(t64, -1)).toThrow(RangeError);
  });
});
