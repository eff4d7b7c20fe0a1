/**
 * @module Adaptive clipping: the clip norm follows a target quantile of the clients' update norms.
 *
 * Andrew, Thakkar, McMahan, Ramaswamy. "Differentially Private Learning with Adaptive Clipping."
 * NeurIPS 2021, Algorithm 1 with the geometric update. Each sampled client reports bᵢ = 1 when its
 * update's norm is at most the round's clip norm C (it was not clipped). The server releases the
 * noised fraction b̃ = (Σ bᵢ + N(0, σ_b²)) / m, m the expected number of clients per round, and
 * moves C ← C · exp(−η · (b̃ − γ)): more unclipped clients than the target quantile γ means C is
 * above the γ-quantile of the norms, so it shrinks, and the other way round.
 *
 * Privacy (§3.1): the count query on bᵢ − ½ has sensitivity ½, so releasing it with noise σ_b and
 * the clipped sum with noise z_Δ·C is, together, one Gaussian mechanism of noise multiplier z when
 * z_Δ = (z⁻² − (2σ_b)⁻²)^(−½). The accountant sees z; the update gets z_Δ (slightly more noise).
 */

export interface AdaptiveClippingParams {
  /** γ: the quantile of update norms the clip norm tracks. */
  targetQuantile: number;
  /** η_C: the geometric learning rate of the clip norm. */
  learningRate: number;
  /** σ_b: the standard deviation of the noise on the count of unclipped clients. */
  countNoise: number;
}

/** The next clip norm from the current one and the round's noised unclipped fraction b̃. */
export function nextClipNorm(clipNorm: number, unclippedFraction: number, p: Pick<AdaptiveClippingParams, 'targetQuantile' | 'learningRate'>): number {
  return clipNorm * Math.exp(-p.learningRate * (unclippedFraction - p.targetQuantile));
}

/** z_Δ, the update's noise multiplier, so that it and the count's σ_b together spend what z does; null when σ_b is too small (2σ_b ≤ z). */
export function updateNoiseMultiplier(z: number, countNoise: number): number | null {
  const rest = z ** -2 - (2 * countNoise) ** -2;
  return rest > 0 ? rest ** -0.5 : null;
}

/** The paper's default count noise: σ_b = m / 20 for m expected clients per round. */
export function defaultCountNoise(expectedClients: number): number {
  return expectedClients / 20;
}
