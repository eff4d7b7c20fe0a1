/**
 * @module The privacy of a task's releases: the DP-FedAvg close (noise on the clipped sum, the
 * adaptive clip step), the accountant's ε after a number of releases, the budget, and the record
 * every version carries. Pure: arrays and plain data in and out, noise from the sampler passed in.
 *
 * **Central DP-FedAvg** (McMahan, Ramage, Talwar, Zhang. "Learning Differentially Private
 * Recurrent Language Models." ICLR 2018, Algorithm 1 with the fixed-denominator estimator f̃_f).
 * Each client is in a round with probability q, independently (Poisson sampling, the sampling the
 * RDP accountant models). Every update is clipped to S and weighs 1: uniform weights, so adding or
 * removing one client moves the sum by at most S. An example-count weight would break that bound,
 * and a capped count weight would only scale it, so the paper's simpler uniform choice is taken.
 * The release is Σ clip(Δᵢ) + N(0, (z·S)²·I), divided by the expected number of participants
 * m = rounds.clientsPerRound (a constant, so the division is post-processing); the strategy's
 * server step (FedAvg, momentum, Adam…) then runs on that noised mean.
 *
 * **Local DP**: each client clips to S and adds N(0, (z·S)²) itself. Any two inputs differ by at
 * most 2S after clipping (replace-one, the local model's neighbour relation), so a release is the
 * Gaussian mechanism with multiplier z/2; ε over T rounds is for a client that took part in all.
 *
 * **Accountant**: RDP of the sampled Gaussian (Mironov, Talwar, Zhang 2019), composed over the
 * releases, converted to (ε, δ) with Balle et al. 2020 (see #protocol/rdp.ts).
 */
import type { SecureGaussian } from '#protocol/dp.ts';
import type { VersionPrivacy } from '#protocol/messages.ts';
import { DEFAULT_RDP_ORDERS, sampledGaussianEpsilon } from '#protocol/rdp.ts';
import { defaultCountNoise, nextClipNorm, updateNoiseMultiplier } from './adaptive.ts';
import type { CentralPrivacy, PrivacyConfig } from './config.ts';

export const ACCOUNTANT = 'rdp-sampled-gaussian (Mironov et al. 2019; conversion: Balle et al. 2020)';

/** What the aggregator persists of a task's privacy, with its live state, changed only with a published version. */
export interface PrivacyState {
  /** Versions released under DP so far. */
  releases: number;
  /** The clip norm of the next round (fixed, or where adaptive clipping has moved it). */
  clipNorm: number;
  /** Set when the budget allowed no further round: the task is finished. */
  exhaustedAt: number | null;
}

/** The privacy record of one published version (its manifest's `privacy`). */
export type PrivacyRecord = VersionPrivacy;

export function initialPrivacyState(p: PrivacyConfig): PrivacyState {
  return { releases: 0, clipNorm: p.clipNorm, exhaustedAt: null };
}

/** ε at the task's δ after `releases` releases (0 for none). */
export function epsilonAfter(p: PrivacyConfig, releases: number): number {
  if (releases === 0) return 0;
  const [q, z] = p.mode === 'central' ? [p.samplingRate, p.noiseMultiplier] : [1, p.noiseMultiplier / 2];
  return sampledGaussianEpsilon(q, z, releases, p.delta, DEFAULT_RDP_ORDERS).epsilon;
}

/** Whether the budget (if any) allows release number `releases`. */
export function budgetAllows(p: PrivacyConfig, releases: number): boolean {
  return p.epsilonBudget === undefined || epsilonAfter(p, releases) <= p.epsilonBudget;
}

/** σ_b of adaptive clipping, from its configuration or the paper's default. */
export function countNoiseOf(p: CentralPrivacy, expectedClients: number): number {
  return p.adaptiveClipping?.countNoise ?? defaultCountNoise(expectedClients);
}

/** Why this configuration cannot run with these round rules (a message for `invalid_privacy`), or null. */
export function configMisfit(p: PrivacyConfig, expectedClients: number): string | null {
  if (p.mode === 'central' && p.adaptiveClipping) {
    const sb = countNoiseOf(p, expectedClients);
    if (updateNoiseMultiplier(p.noiseMultiplier, sb) === null)
      return `adaptive clipping: the count noise σ_b = ${sb} must exceed noiseMultiplier / 2 = ${p.noiseMultiplier / 2} (Andrew et al. 2021 §3.1); raise privacy.adaptiveClipping.countNoise or rounds.clientsPerRound`;
  }
  if (!budgetAllows(p, 1))
    return `one round alone spends ε = ${epsilonAfter(p, 1).toPrecision(4)} at δ = ${p.delta}, above the budget ${p.epsilonBudget}: raise noiseMultiplier${p.mode === 'central' ? ' or lower samplingRate' : ''}, or the budget`;
  return null;
}

export interface CentralClose {
  /** The noised mean update (Σ clip(Δᵢ) + noise) / m, to hand to the strategy's server step. */
  meanDelta: Float32Array;
  record: PrivacyRecord;
  next: PrivacyState;
}

/**
 * The DP-FedAvg close: `sum` = Σ clip(Δᵢ) over the round's updates (weights 1, float64; it is
 * noised in place), `unclipped` = how many of them had a norm ≤ S before clipping.
 */
export function closeCentral(
  p: CentralPrivacy,
  state: PrivacyState,
  sum: Float64Array,
  unclipped: number,
  expectedClients: number,
  noise: SecureGaussian,
): CentralClose {
  const s = state.clipNorm;
  const releases = state.releases + 1;
  let zUpdate = p.noiseMultiplier;
  let adaptive: PrivacyRecord['adaptiveClipping'];
  let nextClip = s;
  if (p.adaptiveClipping) {
    const countNoise = countNoiseOf(p, expectedClients);
    zUpdate = updateNoiseMultiplier(p.noiseMultiplier, countNoise)!;
    const fraction = (unclipped + countNoise * noise.standard()) / expectedClients;
    nextClip = nextClipNorm(s, fraction, p.adaptiveClipping);
    adaptive = { ...p.adaptiveClipping, countNoise, updateNoiseMultiplier: zUpdate, nextClipNorm: nextClip };
  }
  noise.addTo(sum, zUpdate * s);
  const meanDelta = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) meanDelta[i] = sum[i]! / expectedClients;
  return {
    meanDelta,
    next: { releases, clipNorm: nextClip, exhaustedAt: null },
    record: {
      mode: 'central',
      accountant: ACCOUNTANT,
      epsilon: epsilonAfter(p, releases),
      delta: p.delta,
      noiseMultiplier: p.noiseMultiplier,
      clipNorm: s,
      samplingRate: p.samplingRate,
      rounds: releases,
      clipping: p.clipping,
      ...(adaptive ? { adaptiveClipping: adaptive } : {}),
      epsilonBudget: p.epsilonBudget ?? null,
    },
  };
}

/** The record of a version released under local DP (the noise was added on the devices). */
export function localRecord(p: Extract<PrivacyConfig, { mode: 'local' }>, state: PrivacyState): { record: PrivacyRecord; next: PrivacyState } {
  const releases = state.releases + 1;
  return {
    next: { ...state, releases },
    record: {
      mode: 'local',
      accountant: ACCOUNTANT,
      epsilon: epsilonAfter(p, releases),
      epsilonPerRound: epsilonAfter(p, 1),
      delta: p.delta,
      noiseMultiplier: p.noiseMultiplier,
      clipNorm: p.clipNorm,
      samplingRate: 1,
      rounds: releases,
      clipping: 'local',
      epsilonBudget: p.epsilonBudget ?? null,
    },
  };
}
