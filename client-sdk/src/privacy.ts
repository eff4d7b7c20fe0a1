/**
 * @module Differential privacy on the device: what a DP task's assignment asks of an update
 * (`ClientPrivacy`), applied before the update leaves.
 *
 * - Central DP with client-side clipping: the update is clipped to the round's clip norm (the
 *   server refuses anything above it and adds the noise to the sum itself).
 * - Local DP: the update is clipped to S and Gaussian noise of σ = z·S is added here, from
 *   `crypto.getRandomValues`, so the server never sees the un-noised update. One round's release is
 *   (ε, δ)-DP for this device with ε from the RDP accountant: any two clipped updates differ by at
 *   most 2S (replace-one), so it is the Gaussian mechanism with multiplier z/2.
 */
import { clipToNorm, SecureGaussian } from './protocol/dp.ts';
import { type ClientPrivacy, UPDATE_META } from './protocol/messages.ts';
import { sampledGaussianEpsilon } from './protocol/rdp.ts';

/**
 * What privatizing one update did: the norm before clipping, whether it was clipped, and under
 * local DP the ε (at δ) this round's update spends for this device.
 *
 * @example
 * const result = await client.participate({ xs, ys });
 * if (result.privacy?.epsilon !== undefined) console.log(`this round: ε = ${result.privacy.epsilon.toFixed(2)} at δ = ${result.privacy.delta}`);
 */
export interface UpdatePrivacy {
  mode: ClientPrivacy['mode'];
  clipNorm: number;
  /** ‖Δ‖₂ as trained, before clipping. */
  normBeforeClipping: number;
  clipped: boolean;
  /** Local DP: σ = noiseMultiplier × clipNorm was added on the device (0 under central DP). */
  noiseMultiplier: number;
  /** Local DP: ε at `delta` of this round's update (replace-one, one release); absent under central DP. */
  epsilon?: number;
  delta: number;
}

/**
 * ε at δ of `rounds` local-DP releases with noise multiplier z (sensitivity 2S: replace-one).
 *
 * @example
 * localEpsilon(4, 1e-5); // ε of one round with σ = 4·S
 */
export function localEpsilon(noiseMultiplier: number, delta: number, rounds = 1): number {
  return sampledGaussianEpsilon(1, noiseMultiplier / 2, rounds, delta).epsilon;
}

/**
 * A privatized copy of `delta` (the input is left as it is), the metadata the server needs, and
 * the report. Noise comes from `noise` (default: the secure sampler).
 *
 * @example
 * const { delta: sent, report } = privatizeUpdate(trained.delta, assignment.privacy);
 */
export function privatizeUpdate(
  delta: Float32Array,
  p: ClientPrivacy,
  noise: SecureGaussian = new SecureGaussian(),
): { delta: Float32Array; metadata: Record<string, string>; report: UpdatePrivacy } {
  const out = delta.slice();
  const { norm, clipped } = clipToNorm(out, p.clipNorm);
  const metadata: Record<string, string> = p.reportUnclipped ? { [UPDATE_META.unclipped]: clipped ? '0' : '1' } : {};
  const report: UpdatePrivacy = { mode: p.mode, clipNorm: p.clipNorm, normBeforeClipping: norm, clipped, noiseMultiplier: 0, delta: p.delta };
  if (p.mode === 'local') {
    noise.addTo(out, p.noiseMultiplier * p.clipNorm);
    report.noiseMultiplier = p.noiseMultiplier;
    report.epsilon = localEpsilon(p.noiseMultiplier, p.delta);
  }
  return { delta: out, metadata, report };
}
