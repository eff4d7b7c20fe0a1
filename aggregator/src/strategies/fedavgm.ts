/**
 * @module FedAvgM: FedAvg with server momentum.
 *
 * Hsu, Qi, Brown. "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
 * Classification." arXiv:1909.06335, 2019. With the mean update Δ̄ as a pseudo-gradient step:
 * v ← β·v + Δ̄;  w' = w + η·v  (η: server learning rate, β: momentum; η = 1, β = 0 is FedAvg).
 */
import { type Strategy, type StrategyState, stepFromMean } from './strategy.ts';

export interface FedAvgMParams {
  serverLearningRate: number;
  momentum: number;
}

export function fedAvgM({ serverLearningRate: lr, momentum: beta }: FedAvgMParams): Strategy {
  const s: Strategy = {
    name: 'fedavgm',
    params: { serverLearningRate: lr, momentum: beta },
    keeps: 'sum',
    aggregate: (base, round, state) => stepFromMean(s, base, round, state),
    initialState: (n) => ({ step: 0, vectors: { momentum: new Float32Array(n) } }),
    apply(base, meanDelta, state: StrategyState) {
      const prev = state.vectors.momentum ?? new Float32Array(base.length);
      const momentum = new Float32Array(base.length);
      const next = new Float32Array(base.length);
      for (let i = 0; i < next.length; i++) {
        const v = beta * prev[i]! + meanDelta[i]!;
        momentum[i] = v;
        next[i] = base[i]! + lr * v;
      }
      return { next, state: { step: state.step + 1, vectors: { momentum } } };
    },
  };
  return s;
}
