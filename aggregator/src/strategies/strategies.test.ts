/**
 * Each strategy against values computed by hand (Prepare / Execute / Assert), plus a check that the
 * degenerate settings reduce to plain FedAvg.
 */
import { describe, expect, it } from 'vitest';
import { createStrategy, stalenessWeight } from './index.ts';
import { clipToNorm } from './norm-bound.ts';

const base = Float32Array.from([1, -2, 0.5]);
const d1 = Float32Array.from([0.2, -0.4, 0]);
const d2 = Float32Array.from([-0.1, 0.1, 0.3]);

function close(actual: Float32Array, expected: number[], tol = 1e-6) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(tol);
}

describe('FedAvg', () => {
  it('adds the mean update to the base', () => {
    const s = createStrategy({ name: 'fedavg' });
    const { next, state } = s.apply(base, d1, s.initialState(3));
    close(next, [1.2, -2.4, 0.5]);
    expect(state.step).toBe(1);
  });
});

describe('FedProx (Li et al. 2020)', () => {
  it('aggregates exactly as FedAvg (its proximal term lives in the clients) and records μ', () => {
    const p = createStrategy({ name: 'fedprox', mu: 0.1 });
    const a = createStrategy({ name: 'fedavg' });
    expect(p.params).toEqual({ mu: 0.1 });
    expect(Array.from(p.apply(base, d1, p.initialState(3)).next)).toEqual(Array.from(a.apply(base, d1, a.initialState(3)).next));
  });
});

describe('FedAvgM (Hsu et al. 2019)', () => {
  it('accumulates server momentum across rounds', () => {
    // Prepare: η = 0.5, β = 0.9
    const s = createStrategy({ name: 'fedavgm', serverLearningRate: 0.5, momentum: 0.9 });
    // Execute: round 1: v = d1 = [0.2, -0.4, 0]; w = base + 0.5 v = [1.1, -2.2, 0.5]
    const r1 = s.apply(base, d1, s.initialState(3));
    close(r1.next, [1.1, -2.2, 0.5]);
    close(r1.state.vectors.momentum!, [0.2, -0.4, 0]);
    // round 2: v = 0.9·[0.2,-0.4,0] + [-0.1,0.1,0.3] = [0.08, -0.26, 0.3]; w = [1.1,-2.2,0.5] + 0.5 v = [1.14, -2.33, 0.65]
    const r2 = s.apply(r1.next, d2, r1.state);
    close(r2.state.vectors.momentum!, [0.08, -0.26, 0.3]);
    close(r2.next, [1.14, -2.33, 0.65]);
    expect(r2.state.step).toBe(2);
  });

  it('is FedAvg with η = 1 and β = 0', () => {
    const m = createStrategy({ name: 'fedavgm', serverLearningRate: 1, momentum: 0 });
    const a = createStrategy({ name: 'fedavg' });
    expect(Array.from(m.apply(base, d2, m.initialState(3)).next)).toEqual(Array.from(a.apply(base, d2, a.initialState(3)).next));
  });
});

describe('FedOpt family (Reddi et al. 2021)', () => {
  const p = { serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.01 };
  // Round 1 from m = 0, v = τ² = 1e-4, Δ̄ = d1 = [0.2, -0.4, 0]: m = 0.1·Δ̄ = [0.02, -0.04, 0].
  it('FedAdam: v = β₂v + (1 − β₂)Δ̄²', () => {
    const s = createStrategy({ name: 'fedadam', ...p });
    const { next, state } = s.apply(base, d1, s.initialState(3));
    // v = 0.99e-4 + 0.01·[0.04, 0.16, 0] = [0.000499, 0.001699, 0.000099]
    close(state.vectors.v!, [0.000499, 0.001699, 0.000099], 1e-9);
    close(state.vectors.m!, [0.02, -0.04, 0]);
    // w = base + 0.1·m / (√v + 0.01): [1 + 0.002/0.032338, -2 - 0.004/0.051219, 0.5]
    close(next, [1 + 0.002 / (Math.sqrt(0.000499) + 0.01), -2 - 0.004 / (Math.sqrt(0.001699) + 0.01), 0.5]);
    expect(next[0]!).toBeCloseTo(1.061847, 5);
  });

  it('FedAdagrad: v = v + Δ̄²', () => {
    const s = createStrategy({ name: 'fedadagrad', ...p });
    const { next, state } = s.apply(base, d1, s.initialState(3));
    close(state.vectors.v!, [0.0401, 0.1601, 0.0001], 1e-8);
    close(next, [1 + 0.002 / (Math.sqrt(0.0401) + 0.01), -2 - 0.004 / (Math.sqrt(0.1601) + 0.01), 0.5]);
  });

  it('FedYogi: v = v − (1 − β₂)Δ̄²·sign(v − Δ̄²), over two rounds', () => {
    const s = createStrategy({ name: 'fedyogi', ...p });
    const r1 = s.apply(base, d1, s.initialState(3));
    // v₀ = 1e-4 < Δ̄² for the first two coordinates: v = 1e-4 + 0.01·Δ̄²; third: Δ̄ = 0 → sign(1e-4) = 1, v = 1e-4
    close(r1.state.vectors.v!, [0.0001 + 0.0004, 0.0001 + 0.0016, 0.0001], 1e-9);
    const r2 = s.apply(r1.next, d2, r1.state);
    // m = 0.9·[0.02,-0.04,0] + 0.1·[-0.1,0.1,0.3] = [0.008, -0.026, 0.03]
    close(r2.state.vectors.m!, [0.008, -0.026, 0.03], 1e-7);
    // v: [0.0005 − 0.01·0.01·sign(0.0005 − 0.01), 0.0017 − 0.01·0.01·sign(0.0017 − 0.01), 0.0001 − 0.01·0.09·sign(0.0001 − 0.09)]
    close(r2.state.vectors.v!, [0.0006, 0.0018, 0.001], 1e-9);
  });

  it('leaves its inputs unchanged', () => {
    const s = createStrategy({ name: 'fedadam', ...p });
    const st = s.initialState(3);
    const b = base.slice();
    const d = d1.slice();
    s.apply(b, d, st);
    expect(Array.from(b)).toEqual(Array.from(base));
    expect(Array.from(d)).toEqual(Array.from(d1));
    expect(Array.from(st.vectors.m!)).toEqual([0, 0, 0]);
  });
});

describe('FedBuff (Nguyen et al. 2022)', () => {
  it('weights by (1 + s)^−a and steps by η times the aggregated update', () => {
    expect(stalenessWeight(0, 0.5)).toBe(1);
    expect(stalenessWeight(3, 0.5)).toBeCloseTo(0.5, 15);
    expect(stalenessWeight(1, 2)).toBeCloseTo(0.25, 15);
    const s = createStrategy({ name: 'fedbuff', bufferSize: 4, stalenessExponent: 0.5, maxStaleness: 3, serverLearningRate: 0.5 });
    expect([s.asynchronous, s.params]).toEqual([
      { bufferSize: 4, maxStaleness: 3 },
      { bufferSize: 4, stalenessExponent: 0.5, maxStaleness: 3, serverLearningRate: 0.5 },
    ]);
    expect(s.weightOf?.(10, 3)).toBeCloseTo(5, 12);
    close(s.apply(base, d1, s.initialState(3)).next, [1.1, -2.2, 0.5]);
  });
});

describe('norm bounding (Sun et al. 2019)', () => {
  it('scales an update above the bound onto it and leaves one below untouched', () => {
    close(clipToNorm(Float32Array.from([3, 4]), 1), [0.6, 0.8]);
    close(clipToNorm(Float32Array.from([0.3, 0.4]), 1), [0.3, 0.4]);
  });

  it('composes with any strategy and is recorded in its parameters', () => {
    const s = createStrategy({ name: 'fedavgm', serverLearningRate: 1, momentum: 0.5, clipNorm: 2 });
    expect(s.params).toEqual({ serverLearningRate: 1, momentum: 0.5, clipNorm: 2 });
    close(s.prepareUpdate!(Float32Array.from([0, 6, 8])), [0, 1.2, 1.6]);
  });
});
