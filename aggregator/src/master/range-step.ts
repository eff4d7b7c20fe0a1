/**
 * @module One range's part of a ranged close, the computation (range-aggregator.ts does the I/O):
 * for a strategy that keeps a sum, Σwᵢ·Δᵢ over the accepted clients' chunks in acceptance order,
 * then its step from the base slice; for a coordinate-wise update-based one (median, trimmed
 * mean), its rule over the range's chunks, 65,536 parameters of every client at a time. Everything
 * it holds is sized by the range, never by the model: the float64 sum (8 bytes a parameter) and one
 * client's chunk at a time, or k pieces of 256 KiB; and what the strategy's step allocates (the
 * mean and the new slice, 4 bytes a parameter each).
 */
import type { EncodedView, UpdateEncoding } from '#protocol/encoding.ts';
import { createRunningSum } from '../kernels/running-sum.ts';
import { addDelta } from '../strategies/fedavg.ts';
import { createStrategy, type StrategyConfig, type StrategyState } from '../strategies/index.ts';
import { accumulatePairwiseSquaredDistances, type KrumSelection, selectionMeanInto } from '../strategies/krum.ts';
import { forRanges } from '../strategies/update-based.ts';
import { emptyUpdate, UPDATE_CHUNK_FLOATS } from './chunks.ts';

export interface RangeStep {
  length: number;
  encoding: UpdateEncoding;
  /** The round's accepted clients, in acceptance order: their weight in the sum and example count. */
  clients: readonly { clientId: string; weight: number; numExamples: number }[];
  numExamples: number;
  strategy: StrategyConfig;
  /** Krum: the updates the master selected from every range's distances (krumSelection); the range averages them. */
  selection?: KrumSelection | undefined;
}

/** How the step reads the stored chunks of the range. */
export interface ChunkReader {
  /** Fills `into` with a client's whole chunk. */
  whole(clientId: string, into: EncodedView): void;
  /** Parameters [start, start + n) of a client's chunk as float32 (start a multiple of 65,536, one stored row). */
  piece(clientId: string, start: number, n: number): Float32Array;
}

/** The range's new float32 slice, and the strategy state that goes with it. */
export async function sumAndStep(
  job: RangeStep,
  chunks: ChunkReader,
  base: () => Promise<Float32Array>,
  state: StrategyState | null,
  wasm: WebAssembly.Module | null,
): Promise<{ next: Float32Array; state: StrategyState | null }> {
  const strategy = createStrategy(job.strategy);
  const read = (start: number, end: number) => job.clients.map((c) => chunks.piece(c.clientId, start, end - start));
  if (job.selection) {
    // Krum's second pass, as one object runs it: the selection's mean, range by range, added to the base.
    const delta = new Float32Array(job.length);
    const selection = job.selection;
    forRanges(job.length, UPDATE_CHUNK_FLOATS, (s, e) => selectionMeanInto(read(s, e), selection, delta.subarray(s, e)));
    return { next: addDelta(await base(), delta), state: null };
  }
  if (strategy.keeps === 'updates') {
    if (!strategy.coordinateWise) throw new Error(`${strategy.name} does not work range by range without a selection`);
    const round = {
      kind: 'updates' as const,
      read,
      numParams: job.length,
      count: job.clients.length,
      rangeLength: UPDATE_CHUNK_FLOATS,
      numExamples: job.clients.map((c) => c.numExamples),
    };
    return strategy.aggregate(await base(), round, state);
  }
  const sum = createRunningSum(job.length, { wasm });
  try {
    const view = emptyUpdate(job.encoding, job.length);
    for (const { clientId, weight } of job.clients) {
      chunks.whole(clientId, view);
      sum.addEncoded(view, weight);
    }
    return strategy.aggregate(await base(), { kind: 'sum', sum, numExamples: job.numExamples }, state);
  } finally {
    sum.dispose();
  }
}

/**
 * Krum's first pass over this range: the k × k squared distances of each stored piece (65,536
 * parameters) of the clients' chunks, one matrix per piece in parameter order, concatenated. The
 * master adds them in that order, range after range, which is how one object adds its pieces'.
 */
export function distanceParts(length: number, clientIds: readonly string[], chunks: Pick<ChunkReader, 'piece'>): Float64Array {
  const k = clientIds.length;
  const pieces = Math.ceil(length / UPDATE_CHUNK_FLOATS);
  const out = new Float64Array(pieces * k * k);
  forRanges(length, UPDATE_CHUNK_FLOATS, (s, e) => {
    const part = out.subarray((s / UPDATE_CHUNK_FLOATS) * k * k, (s / UPDATE_CHUNK_FLOATS + 1) * k * k);
    accumulatePairwiseSquaredDistances(
      clientIds.map((id) => chunks.piece(id, s, e - s)),
      part,
    );
  });
  return out;
}
