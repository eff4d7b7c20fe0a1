/**
 * @module The strategy interface: how a round's aggregate becomes the next global model.
 *
 * Streaming-friendly by construction: updates are summed as they arrive (after an optional
 * per-update transform such as norm clipping), and at the close the strategy turns the weighted
 * mean update Δ̄ = Σ nᵢΔᵢ / Σ nᵢ into the next weights, carrying server state (momentum,
 * moments) from round to round. Pure: typed arrays and plain data in and out.
 */

/** Server-side state carried across rounds (persisted by the aggregator). */
export interface StrategyState {
  /** Rounds applied so far. */
  step: number;
  /** Named float32 vectors of model size, e.g. `momentum`, `m`, `v`. */
  vectors: Record<string, Float32Array>;
}

export interface Strategy {
  /** Stable name, recorded on every version the strategy produced. */
  readonly name: string;
  /** Its parameters, as validated. */
  readonly params: Readonly<Record<string, number>>;
  /** Transforms one validated update in place before it is summed (e.g. clipping); returns it. */
  prepareUpdate?(delta: Float32Array): Float32Array;
  /** The state before the first round. */
  initialState(numParams: number): StrategyState;
  /** next = f(base, Δ̄, state). Must not modify its inputs. */
  apply(base: Float32Array, meanDelta: Float32Array, state: StrategyState): { next: Float32Array; state: StrategyState };
}

export function emptyState(): StrategyState {
  return { step: 0, vectors: {} };
}
