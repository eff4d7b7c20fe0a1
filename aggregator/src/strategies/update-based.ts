/**
 * @module Strategies that aggregate every update of a round (median, trimmed mean, Krum): the
 * aggregator stores the round's updates in parameter-range chunks and the strategy reads them back
 * one range of all k updates at a time, so its memory is k × range length whatever the model size.
 * The next model is base + the robust aggregate Δ̂ (the FedAvg server step).
 */
import { assignmentCapacity, type RoundRules } from '../master/round-machine.ts';
import { addDelta } from './fedavg.ts';
import { emptyState, type Strategy, type UpdatesInput } from './strategy.ts';

/** The most updates one round may keep (bounds the close's memory and the object's storage). */
export const MAX_UPDATES_PER_ROUND = 100;

/** Calls `f` for [0, n) in ranges of `rangeLength`, in increasing order. */
export function forRanges(n: number, rangeLength: number, f: (start: number, end: number) => void): void {
  for (let start = 0; start < n; start += rangeLength) f(start, Math.min(n, start + rangeLength));
}

/**
 * An update-based strategy: `robustDelta` computes Δ̂ from the round's updates; `rules` adds checks
 * of its own to the bound on updates per round; `coordinateWise`: Δ̂[j] depends on the updates' j-th
 * values only (see Strategy).
 */
export function updateBased(
  name: string,
  params: Record<string, number | string>,
  robustDelta: (round: UpdatesInput, out: Float32Array) => void,
  rules?: (rules: RoundRules) => string | null,
  coordinateWise = false,
): Strategy {
  return {
    name,
    params,
    keeps: 'updates',
    coordinateWise,
    initialState: emptyState,
    apply: (base, delta, state) => ({ next: addDelta(base, delta), state: { step: state.step + 1, vectors: {} } }),
    checkRules(r) {
      const capacity = assignmentCapacity(r);
      if (capacity > MAX_UPDATES_PER_ROUND) {
        return `${name} keeps every update of a round: at most ${MAX_UPDATES_PER_ROUND} clients per round (clientsPerRound × overSelection is ${capacity})`;
      }
      return rules?.(r) ?? null;
    },
    aggregate(base, round) {
      if (round.kind !== 'updates') throw new Error(`${name} aggregates the round's stored updates, not a running sum`);
      const delta = new Float32Array(round.numParams);
      robustDelta(round, delta);
      return { next: addDelta(base, delta), state: null };
    },
  };
}
