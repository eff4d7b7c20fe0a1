/**
 * @module FedBuff: asynchronous aggregation with a buffer and staleness weighting.
 *
 * Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba. "Federated Learning with Buffered
 * Asynchronous Aggregation." AISTATS 2022. There are no synchronized rounds: clients train on
 * whatever version is current and the server folds each update into a buffer as it arrives,
 * weighted by nᵢ·(1 + sᵢ)^−a where sᵢ is how many versions old its base is; when K updates are
 * buffered it publishes w' = w + η · Σ nᵢ(1 + sᵢ)^−a Δᵢ / Σ nᵢ (a stale update moves the model
 * less; with equal nᵢ this is the paper's (1/K)·Σ s(τᵢ)Δᵢ). Updates staler than `maxStaleness`
 * are refused. The aggregator calls the buffer of one version a "round", so the SDK is unchanged.
 */
import type { Strategy } from './strategy.ts';

export interface FedBuffParams {
  /** K: updates per published version. */
  bufferSize: number;
  /** a in the staleness weight (1 + s)^−a. */
  stalenessExponent: number;
  /** Updates whose base is more than this many versions old are refused (`stale_update`). */
  maxStaleness: number;
  /** η: the server learning rate. */
  serverLearningRate: number;
}

export interface AsyncStrategy extends Strategy {
  readonly async: FedBuffParams;
}

export function isAsync(s: Strategy): s is AsyncStrategy {
  return (s as AsyncStrategy).async !== undefined;
}

/** (1 + s)^−a */
export function stalenessWeight(staleness: number, exponent: number): number {
  return (1 + staleness) ** -exponent;
}

export function fedBuff({ bufferSize, stalenessExponent, maxStaleness, serverLearningRate }: FedBuffParams): AsyncStrategy {
  const eta = serverLearningRate;
  const p = { bufferSize, stalenessExponent, maxStaleness, serverLearningRate };
  return {
    name: 'fedbuff',
    params: p,
    async: p,
    initialState: () => ({ step: 0, vectors: {} }),
    /** `meanDelta` is Σ nᵢ(1 + sᵢ)^−a Δᵢ / Σ nᵢ, computed by the aggregator from its running sum. */
    apply(base, meanDelta, state) {
      const next = new Float32Array(base.length);
      for (let i = 0; i < next.length; i++) next[i] = base[i]! + eta * meanDelta[i]!;
      return { next, state: { step: state.step + 1, vectors: {} } };
    },
  };
}
