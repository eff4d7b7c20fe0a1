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
import { type Strategy, stepFromMean } from './strategy.ts';

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

/** (1 + s)^−a */
export function stalenessWeight(staleness: number, exponent: number): number {
  return (1 + staleness) ** -exponent;
}

export function fedBuff({ bufferSize, stalenessExponent, maxStaleness, serverLearningRate }: FedBuffParams): Strategy {
  const eta = serverLearningRate;
  const s: Strategy = {
    name: 'fedbuff',
    params: { bufferSize, stalenessExponent, maxStaleness, serverLearningRate },
    keeps: 'sum',
    asynchronous: { bufferSize, maxStaleness },
    weightOf: (numExamples, staleness) => numExamples * stalenessWeight(staleness, stalenessExponent),
    initialState: () => ({ step: 0, vectors: {} }),
    apply(base, meanDelta, state) {
      const next = new Float32Array(base.length);
      for (let i = 0; i < next.length; i++) next[i] = base[i]! + eta * meanDelta[i]!;
      return { next, state: { step: state.step + 1, vectors: {} } };
    },
    // Σ nᵢ(1+sᵢ)^−a Δᵢ / Σ nᵢ: staleness shrinks the step instead of being normalized away.
    aggregate: (base, round, state) => stepFromMean(s, base, round, state, (input) => input.sum.totalWeight / input.numExamples),
  };
  return s;
}
