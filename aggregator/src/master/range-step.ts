/**
 * @module One range's part of a ranged close, the computation (range-aggregator.ts does the I/O):
 * Σwᵢ·Δᵢ over the accepted clients' chunks in acceptance order, then the strategy's step from the
 * base slice. Everything it holds is sized by the range, never by the model: the float64 sum (8
 * bytes a parameter), one client's chunk at a time (in the task's encoding), and what the
 * strategy's step allocates (the mean and the new slice, 4 bytes a parameter each).
 */
import type { EncodedView, UpdateEncoding } from '#protocol/encoding.ts';
import { createRunningSum } from '../kernels/running-sum.ts';
import { createStrategy, type StrategyConfig, type StrategyState } from '../strategies/index.ts';
import { emptyUpdate } from './chunks.ts';

export interface RangeStep {
  length: number;
  encoding: UpdateEncoding;
  clients: readonly { clientId: string; weight: number }[];
  numExamples: number;
  strategy: StrategyConfig;
}

/** The range's new float32 slice, and the strategy state that goes with it. `readChunk` fills `into` with a client's chunk. */
export function sumAndStep(
  job: RangeStep,
  readChunk: (clientId: string, into: EncodedView) => void,
  base: () => Promise<Float32Array>,
  state: StrategyState | null,
  wasm: WebAssembly.Module | null,
): Promise<{ next: Float32Array; state: StrategyState | null }> {
  const sum = createRunningSum(job.length, { wasm });
  const view = emptyUpdate(job.encoding, job.length);
  for (const { clientId, weight } of job.clients) {
    readChunk(clientId, view);
    sum.addEncoded(view, weight);
  }
  return base()
    .then((b) => createStrategy(job.strategy).aggregate(b, { kind: 'sum', sum, numExamples: job.numExamples }, state))
    .finally(() => sum.dispose());
}
