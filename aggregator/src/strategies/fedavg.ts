/**
 * @module FedAvg: the next model is the base plus the example-weighted mean update.
 *
 * McMahan, Moore, Ramage, Hampson, Agüera y Arcas. "Communication-Efficient Learning of Deep
 * Networks from Decentralized Data." AISTATS 2017. With clients sending Δᵢ = wᵢ − w:
 * w' = w + Σ nᵢΔᵢ / Σ nᵢ (equal to Σ nᵢwᵢ / Σ nᵢ).
 */
import { emptyState, type Strategy, sumOf } from './strategy.ts';

/** w + Δ, rounded to float32 once per coordinate. */
export function addDelta(base: Float32Array, delta: Float32Array): Float32Array {
  const next = new Float32Array(base.length);
  for (let i = 0; i < next.length; i++) next[i] = base[i]! + delta[i]!;
  return next;
}

export function fedAvg(name = 'fedavg'): Strategy {
  return {
    name,
    params: {},
    keeps: 'sum',
    initialState: emptyState,
    apply: (base, meanDelta, state) => ({ next: addDelta(base, meanDelta), state: { step: state.step + 1, vectors: {} } }),
    aggregate(base, round) {
      // base + Σ/W in float64, rounded once (not base + a rounded mean).
      const next = new Float32Array(base.length);
      sumOf(round, name).sum.finalizeInto(base, next);
      return { next, state: null };
    },
  };
}
