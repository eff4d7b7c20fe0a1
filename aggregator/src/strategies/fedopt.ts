/**
 * @module FedOpt: adaptive server optimizers (FedAdagrad, FedAdam, FedYogi) on the mean update.
 *
 * Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan. "Adaptive Federated
 * Optimization." ICLR 2021, Algorithm 2. With Δ̄ the mean client update (a pseudo-gradient step):
 *   m ← β₁·m + (1 − β₁)·Δ̄
 *   Adagrad: v ← v + Δ̄²
 *   Adam:    v ← β₂·v + (1 − β₂)·Δ̄²
 *   Yogi:    v ← v − (1 − β₂)·Δ̄²·sign(v − Δ̄²)
 *   w' = w + η·m / (√v + τ)
 * m starts at 0 and v at τ² (as in the paper's experiments and Flower's FedOpt), no bias correction.
 */
import { type Strategy, type StrategyState, stepFromMean } from './strategy.ts';

export type FedOptVariant = 'fedadagrad' | 'fedadam' | 'fedyogi';

export interface FedOptParams {
  serverLearningRate: number;
  beta1: number;
  beta2: number;
  tau: number;
}

export function fedOpt(variant: FedOptVariant, p: FedOptParams): Strategy {
  const { serverLearningRate: eta, beta1, beta2, tau } = p;
  const s: Strategy = {
    name: variant,
    params: { serverLearningRate: eta, beta1, beta2, tau },
    keeps: 'sum',
    aggregate: (base, round, state) => stepFromMean(s, base, round, state),
    initialState: (n) => ({ step: 0, vectors: { m: new Float32Array(n), v: new Float32Array(n).fill(tau * tau) } }),
    apply(base, meanDelta, state: StrategyState) {
      const n = base.length;
      const m0 = state.vectors.m ?? new Float32Array(n);
      const v0 = state.vectors.v ?? new Float32Array(n).fill(tau * tau);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      const next = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const d = meanDelta[i]!;
        const mi = beta1 * m0[i]! + (1 - beta1) * d;
        const d2 = d * d;
        let vi: number;
        if (variant === 'fedadagrad') vi = v0[i]! + d2;
        else if (variant === 'fedadam') vi = beta2 * v0[i]! + (1 - beta2) * d2;
        else vi = v0[i]! - (1 - beta2) * d2 * Math.sign(v0[i]! - d2);
        m[i] = mi;
        v[i] = vi;
        next[i] = base[i]! + (eta * mi) / (Math.sqrt(vi) + tau);
      }
      return { next, state: { step: state.step + 1, vectors: { m, v } } };
    },
  };
  return s;
}

/** FedAdagrad (Reddi et al. 2021). */
export const fedAdagrad = (p: FedOptParams) => fedOpt('fedadagrad', p);
/** FedAdam (Reddi et al. 2021). */
export const fedAdam = (p: FedOptParams) => fedOpt('fedadam', p);
/** FedYogi (Reddi et al. 2021). */
export const fedYogi = (p: FedOptParams) => fedOpt('fedyogi', p);
