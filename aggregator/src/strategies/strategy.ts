/**
 * @module The strategy interface: what a round keeps for its close, and how the close turns it into
 * the next global model.
 *
 * A strategy decides for itself, so the aggregator makes one call and never asks which strategy it
 * runs: it keeps either a running weighted sum of the round's updates (`keeps: 'sum'`: FedAvg, the
 * server optimizers, FedBuff) or every update, readable a parameter range at a time
 * (`keeps: 'updates'`: median, trimmed mean, Krum); it may transform each update before it is kept
 * (norm bounding), weigh it (FedBuff's staleness), check the round rules at task creation, and carry
 * server state (momentum, moments) from round to round. Pure: typed arrays and plain data in and out.
 */
import type { RoundRules } from '../master/round-machine.ts';

/** Server-side state carried across rounds (persisted by the aggregator with the version it produced). */
export interface StrategyState {
  /** Rounds applied so far. */
  step: number;
  /** Named float32 vectors of model size, e.g. `momentum`, `m`, `v`. */
  vectors: Record<string, Float32Array>;
}

/** Reads parameters [start, end) of each of the round's k updates, in acceptance order. */
export type RangeReader = (start: number, end: number) => Float32Array[];

/** The close of a sum-based strategy: the round's running weighted sum Σ wᵢΔᵢ. */
export interface SumInput {
  kind: 'sum';
  sum: {
    /** Σ wᵢ. */
    readonly totalWeight: number;
    /** out = base + Σ wᵢΔᵢ / Σ wᵢ, in float64, rounded once to float32. */
    finalizeInto(base: Float32Array, out: Float32Array): void;
  };
  /** Σ nᵢ, the round's example counts (differs from Σ wᵢ when `weightOf` is not the count). */
  numExamples: number;
}

/** The close of an update-based strategy: every update of the round. */
export interface UpdatesInput {
  kind: 'updates';
  read: RangeReader;
  numParams: number;
  /** k, the number of updates. */
  count: number;
  /** Parameters per stored range: `read` is called with ranges of this length (the last may be shorter). */
  rangeLength: number;
  /** Each update's example count, in acceptance order (the order `read` returns the slices in). */
  numExamples: readonly number[];
}

export type RoundInput = SumInput | UpdatesInput;

export interface Strategy {
  /** The name the task was created with, recorded on every version the strategy produced. */
  readonly name: string;
  /** Its parameters, as validated. */
  readonly params: Readonly<Record<string, number | string>>;
  /** What the round keeps for the close. */
  readonly keeps: RoundInput['kind'];
  /**
   * An update-based strategy whose Δ̂ at each parameter depends only on the updates' values at that
   * parameter (median, trimmed mean, not Krum): it runs on any parameter range alone, so a model
   * split into ranges (master/ranges.ts) aggregates range by range.
   */
  readonly coordinateWise?: boolean;
  /** No synchronized rounds (FedBuff): a buffer of `bufferSize` updates plays the round; updates up to `maxStaleness` versions old count. */
  readonly asynchronous?: { readonly bufferSize: number; readonly maxStaleness: number };
  /** FedProx: the μ of the proximal term clients add to their local loss (sent in the training plan). */
  readonly proximalMu?: number;
  /** An update's weight in the round's sum; default: its example count. */
  weightOf?(numExamples: number, staleness: number): number;
  /** Transforms one validated update in place before it is kept (e.g. clipping); returns it. */
  prepareUpdate?(delta: Float32Array): Float32Array;
  /** At task creation: why the round rules do not fit this strategy, or null when they do. */
  checkRules?(rules: RoundRules): string | null;
  /** The state before the first round. */
  initialState(numParams: number): StrategyState;
  /** next = f(base, Δ̄, state), from the mean update. Must not modify its inputs. */
  apply(base: Float32Array, meanDelta: Float32Array, state: StrategyState): { next: Float32Array; state: StrategyState };
  /** The close: the next global model from the round's input, and the state to persist with it (null: none). */
  aggregate(base: Float32Array, round: RoundInput, state: StrategyState | null): { next: Float32Array; state: StrategyState | null };
}

export function emptyState(): StrategyState {
  return { step: 0, vectors: {} };
}

/** The round's sum, or a clear error when a strategy that keeps a sum is given something else. */
export function sumOf(round: RoundInput, name: string): SumInput {
  if (round.kind !== 'sum') throw new Error(`${name} aggregates a running sum, not stored updates`);
  return round;
}

/**
 * The close of a strategy that steps from the mean update: Δ̄ = Σ wᵢΔᵢ / Σ wᵢ (times `scale`),
 * then `apply` with the carried state.
 */
export function stepFromMean(
  s: Pick<Strategy, 'name' | 'apply' | 'initialState'>,
  base: Float32Array,
  round: RoundInput,
  state: StrategyState | null,
  scale?: (sum: SumInput) => number,
) {
  const input = sumOf(round, s.name);
  const meanDelta = new Float32Array(base.length);
  input.sum.finalizeInto(new Float32Array(base.length), meanDelta);
  if (scale) {
    const k = scale(input);
    for (let i = 0; i < meanDelta.length; i++) meanDelta[i] = meanDelta[i]! * k;
  }
  return s.apply(base, meanDelta, state ?? s.initialState(base.length));
}
