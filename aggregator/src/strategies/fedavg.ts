/**
 * @module FedAvg: the next model is the base plus the example-weighted mean update.
 *
 * McMahan, Moore, Ramage, Hampson, Agüera y Arcas. "Communication-Efficient Learning of Deep
 * Networks from Decentralized Data." AISTATS 2017. With clients sending Δᵢ = wᵢ − w:
 * w' = w + Σ nᵢΔᵢ / Σ nᵢ (equal to Σ nᵢwᵢ / Σ nᵢ).
 */
import { emptyState, type Strategy } from './strategy.ts';

export function fedAvg(): Strategy {
  return {
    name: 'fedavg',
    params: {},
    initialState: emptyState,
    apply(base, meanDelta, state) {
      const next = new Float32Array(base.length);
      for (let i = 0; i < next.length; i++) next[i] = base[i]! + meanDelta[i]!;
      return { next, state: { step: state.step + 1, vectors: {} } };
    },
  };
}
