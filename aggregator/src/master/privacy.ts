/**
 * @module What the master aggregator does for a differentially private task, around its round:
 * what a client is asked to do on the device, what the task view shows of the privacy spent, the
 * answer once the budget is spent, and the privacy step of the close (see privacy/mechanism.ts).
 */
import { SecureGaussian } from '#protocol/dp.ts';
import type { ClientPrivacy } from '#protocol/messages.ts';
import type { RunningSum } from '../kernels/running-sum.ts';
import { KeystreamUniform, newSeed } from '../privacy/keystream.ts';
import { budgetAllows, closeCentral, epsilonAfter, localRecord, type PrivacyRecord, type PrivacyState } from '../privacy/mechanism.ts';
import { hexOf } from '../storage/weights.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Ledger } from './ledger.ts';
import type { TaskState } from './task-spec.ts';
import { type Failure, fail } from './uploads.ts';

export interface PrivacySpent {
  rounds: number;
  epsilon: number;
  clipNorm: number;
  exhausted: boolean;
}

/** What the device must do to its update this round (clip, and under local DP noise), or null when nothing. */
export function clientPrivacy(task: TaskState): ClientPrivacy | null {
  const p = task.spec.privacy;
  if (!p || !task.privacy) return null;
  if (p.mode === 'local') return { mode: 'local', clipNorm: p.clipNorm, noiseMultiplier: p.noiseMultiplier, delta: p.delta, reportUnclipped: false };
  if (p.clipping === 'server') return null;
  return { mode: 'central', clipNorm: task.privacy.clipNorm, noiseMultiplier: 0, delta: p.delta, reportUnclipped: p.adaptiveClipping !== undefined };
}

export function privacySpent(task: TaskState): PrivacySpent | null {
  const p = task.spec.privacy;
  const s = task.privacy;
  if (!p || !s) return null;
  return { rounds: s.releases, epsilon: epsilonAfter(p, s.releases), clipNorm: s.clipNorm, exhausted: s.exhaustedAt !== null };
}

export function budgetExhausted(task: TaskState): Failure {
  const p = task.spec.privacy!;
  const s = task.privacy!;
  return fail(
    'privacy_budget_exhausted',
    `the task finished: after ${s.releases} round(s) it has spent ε = ${epsilonAfter(p, s.releases).toPrecision(4)} at δ = ${p.delta}, and one more would exceed its budget of ${p.epsilonBudget}`,
  );
}

export interface PrivateClose {
  /** Central DP: the noised mean update for the strategy's server step; null under local DP (the strategy aggregates as usual). */
  meanDelta: Float32Array | null;
  record: PrivacyRecord;
  /** The state to persist with the version: releases, next clip norm, and whether the budget is now spent. */
  next: PrivacyState;
}

/**
 * The privacy step of a DP task's close: under central DP, noise on the round's clipped sum
 * (`sum`, weights 1: a running sum, or secure aggregation's unmasked sum, noised in place) and the
 * adaptive clip step; under local DP, the record only. Marks the budget spent when the next
 * release would exceed it.
 */
export function privateClose(task: TaskState, sum: RunningSum | Float64Array | null, unclipped: number, seed: Uint8Array, now: number): PrivateClose {
  const noise = new SecureGaussian(new KeystreamUniform(seed));
  const p = task.spec.privacy!;
  const state = task.privacy!;
  let out: PrivateClose;
  if (p.mode === 'central') {
    if (!sum) throw new Error('central DP closes a running sum');
    const noised = closeCentral(p, state, sum instanceof Float64Array ? sum : Float64Array.from(sum.sum()), unclipped, task.spec.rules.clientsPerRound, noise);
    out = { meanDelta: noised.meanDelta, record: noised.record, next: noised.next };
  } else {
    const local = localRecord(p, state);
    out = { meanDelta: null, ...local };
  }
  if (!budgetAllows(p, out.next.releases + 1)) out.next = { ...out.next, exhaustedAt: now };
  return out;
}

/**
 * The noise seed of the round's close: drawn once and stored before anything is published, so a
 * retried close adds the same noise (see privacy/keystream.ts). Deleted with the round's data.
 */
export function closeSeed(ledger: Ledger, commits: GroupCommit, round: number): Uint8Array {
  const stored = ledger.get(SEED_KEY);
  if (stored) {
    const { round: r, seed } = JSON.parse(stored) as { round: number; seed: string };
    if (r === round) return Uint8Array.from(seed.match(/../g)!, (h) => Number.parseInt(h, 16));
  }
  const seed = newSeed();
  commits.commit(() => ledger.set(SEED_KEY, JSON.stringify({ round, seed: hexOf(seed) })));
  return seed;
}

export const SEED_KEY = 'dp_noise_seed';
