import { describe, expect, it } from 'vitest';
import { SecureGaussian } from '#protocol/dp.ts';
import { sampledGaussianEpsilon } from '#protocol/rdp.ts';
import { rng } from '../../../test/shared/random.ts';
import { updateNoiseMultiplier } from './adaptive.ts';
import { type CentralPrivacy, PrivacyConfigSchema } from './config.ts';
import { budgetAllows, closeCentral, configMisfit, epsilonAfter, initialPrivacyState, localRecord } from './mechanism.ts';

const central = (extra: Record<string, unknown> = {}) =>
  PrivacyConfigSchema.parse({ mode: 'central', noiseMultiplier: 1.2, clipNorm: 2, samplingRate: 0.05, ...extra }) as CentralPrivacy;

describe('the DP-FedAvg close', () => {
  it('is (Σ clip(Δ) + N(0, (z·S)²)) / m, with the noise the sampler gives', () => {
    const p = central();
    const sum = Float64Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const copy = sum.slice();
    const out = closeCentral(p, initialPrivacyState(p), sum, 3, 40, new SecureGaussian({ next: rng(1) }));
    // The same draws, independently: the noise added is exactly z·S times them.
    const g = new SecureGaussian({ next: rng(1) });
    for (let i = 0; i < copy.length; i++) expect(out.meanDelta[i]).toBeCloseTo((copy[i]! + 1.2 * 2 * g.standard()) / 40, 6);
    expect(out.next).toEqual({ releases: 1, clipNorm: 2, exhaustedAt: null });
    expect(out.record).toMatchObject({
      mode: 'central',
      epsilon: sampledGaussianEpsilon(0.05, 1.2, 1, 1e-5).epsilon,
      clipNorm: 2,
      rounds: 1,
      noiseMultiplier: 1.2,
    });
    expect(out.record.adaptiveClipping).toBeUndefined();
  });

  it('with adaptive clipping, noises the update with z_Δ, releases the noised unclipped count and moves S', () => {
    const p = central({ adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2 } });
    const m = 100;
    const out = closeCentral(p, initialPrivacyState(p), new Float64Array(10), 90, m, new SecureGaussian({ next: rng(2) }));
    const a = out.record.adaptiveClipping!;
    expect(a.countNoise).toBe(5); // m / 20
    expect(a.updateNoiseMultiplier).toBe(updateNoiseMultiplier(1.2, 5));
    // 90 of 100 unclipped (±5 noise): b̃ ≈ 0.9 > 0.5, so S shrinks by about exp(−0.2·0.4).
    expect(a.nextClipNorm).toBeLessThan(2);
    expect(a.nextClipNorm / 2).toBeGreaterThan(Math.exp(-0.2 * (0.9 + 0.3 - 0.5)));
    expect(a.nextClipNorm / 2).toBeLessThan(Math.exp(-0.2 * (0.9 - 0.3 - 0.5)));
    expect(out.next.clipNorm).toBe(a.nextClipNorm);
    expect(out.record.clipNorm).toBe(2); // this release was clipped at the old norm
  });
});

describe('accounting and budgets', () => {
  it('composes the releases with the RDP accountant (central: q and z; local: q = 1, multiplier z/2)', () => {
    const p = central();
    expect(epsilonAfter(p, 0)).toBe(0);
    expect(epsilonAfter(p, 20)).toBe(sampledGaussianEpsilon(0.05, 1.2, 20, 1e-5).epsilon);
    const local = PrivacyConfigSchema.parse({ mode: 'local', noiseMultiplier: 4, clipNorm: 1, delta: 1e-6 });
    expect(epsilonAfter(local, 3)).toBe(sampledGaussianEpsilon(1, 2, 3, 1e-6).epsilon);
    const rec = localRecord(local as Extract<typeof local, { mode: 'local' }>, { releases: 2, clipNorm: 1, exhaustedAt: null });
    expect(rec.record).toMatchObject({ rounds: 3, epsilon: epsilonAfter(local, 3), epsilonPerRound: epsilonAfter(local, 1), clipping: 'local' });
  });

  it('allows exactly the releases that fit the budget, and refuses a budget one round exceeds', () => {
    const eps = [1, 2, 3, 4, 5].map((t) => sampledGaussianEpsilon(0.05, 1.2, t, 1e-5).epsilon);
    const p = central({ epsilonBudget: (eps[2]! + eps[3]!) / 2 });
    expect([1, 2, 3, 4, 5].map((t) => budgetAllows(p, t))).toEqual([true, true, true, false, false]);
    expect(configMisfit(p, 100)).toBeNull();
    expect(configMisfit(central({ epsilonBudget: eps[0]! / 2 }), 100)).toMatch(/one round alone spends ε = .* above the budget/);
    expect(configMisfit(central({ adaptiveClipping: {} }), 10)).toMatch(/count noise σ_b = 0.5 must exceed noiseMultiplier \/ 2 = 0.6/);
    expect(configMisfit(central({ adaptiveClipping: { countNoise: 1 } }), 10)).toBeNull();
  });
});
