/**
 * @module Norm bounding: clip every client update to an L2 norm bound before it is summed.
 *
 * Sun, Kairouz, Suresh, McMahan. "Can You Really Backdoor Federated Learning?" arXiv:1911.07963,
 * 2019. Δ ← Δ · min(1, M / ‖Δ‖₂). Composes with any strategy: it only transforms updates.
 */
import type { Strategy } from './strategy.ts';

/** Scales `delta` in place so its L2 norm is at most `bound`; returns it. */
export function clipToNorm(delta: Float32Array, bound: number): Float32Array {
  let sq = 0;
  for (let i = 0; i < delta.length; i++) sq += delta[i]! * delta[i]!;
  const norm = Math.sqrt(sq);
  if (norm > bound) {
    const scale = bound / norm;
    for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * scale;
  }
  return delta;
}

/** `inner` with every update clipped to `bound` first. */
export function withNormBound(inner: Strategy, bound: number): Strategy {
  const innerPrepare = inner.prepareUpdate?.bind(inner);
  return {
    ...inner,
    params: { ...inner.params, clipNorm: bound },
    prepareUpdate: (delta) => clipToNorm(innerPrepare ? innerPrepare(delta) : delta, bound),
  };
}
