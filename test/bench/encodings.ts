/**
 * @module Compressed updates against float32: bytes per update, the client's encoding time, and
 * the aggregator's cost per update (decode the message, check it, fold it into the Wasm float64
 * running sum: what `TaskAggregator` does to an update besides hashing and storing it), for 1M
 * parameters, all measured in one run; and the error each encoding adds to an update.
 *
 *   npm run bench:encodings                        (= node test/bench/encodings.ts)
 *   npx node test/bench/encodings.ts --params 1000000 --updates 50 --runs 5
 *
 * Rows are timed round-robin (every encoding in every repetition) so machine drift hits all alike;
 * medians of `--runs` repetitions of `--updates` updates each. The aggregator's path per update, as
 * update-validation.ts takes it: the safetensors header (`decodeRawTensors`), the tensor set and
 * views over the body (`viewUpdate`, which scans float16 exponents and int8 scales), the Wasm
 * finite scan for float32, then `addEncoded` into the running sum. Also printed: what SQLite would store per update (its bytes), since the
 * storage write is a large part of an update's cost in the Durable Object (bench README).
 */
import { parseArgs } from 'node:util';
import { createRunningSum, firstNonFinite } from '../../aggregator/src/kernels/running-sum.ts';
import { accumulateWasm } from '../../aggregator/src/kernels/wasm-node.ts';
import { decodeRange, encodeUpdate, type UpdateEncoding, viewUpdate } from '../../client-sdk/src/protocol/encoding.ts';
import { UPDATE_META } from '../../client-sdk/src/protocol/messages.ts';
import { decodeRawTensors, encodeRawTensors } from '../../client-sdk/src/protocol/safetensors.ts';
import { rng } from '../shared/random.ts';

const { values } = parseArgs({
  options: { params: { type: 'string', default: '1000000' }, updates: { type: 'string', default: '50' }, runs: { type: 'string', default: '5' } },
});
const d = Number(values.params);
const count = Number(values.updates);
const runs = Number(values.runs);
const ENCODINGS: UpdateEncoding[] = ['float32', 'float16', 'int8'];

// A dense-like layout: one big kernel and a bias.
const bias = Math.min(1000, Math.floor(d / 10));
const tensors = [
  { name: 'dense/kernel', shape: [d - bias] },
  { name: 'dense/bias', shape: [bias] },
];
const next = rng(1);
const deltas = Array.from({ length: Math.min(count, 8) }, () => Float32Array.from({ length: d }, () => (next() * 2 - 1) * 0.01 * (1 + next())));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const meta = { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: '100' };

const bodies = new Map<UpdateEncoding, Uint8Array[]>();
const encodeMs = new Map<UpdateEncoding, number[]>();
for (const e of ENCODINGS) {
  const out: Uint8Array[] = [];
  const times: number[] = [];
  for (const delta of deltas) {
    const t0 = performance.now();
    out.push(encodeRawTensors(encodeUpdate(tensors, delta, e).tensors, meta));
    times.push(performance.now() - t0);
  }
  bodies.set(e, out);
  encodeMs.set(e, times);
}

const sums = new Map(ENCODINGS.map((e) => [e, createRunningSum(d, { wasm: accumulateWasm })]));
const aggMs = new Map<UpdateEncoding, number[]>(ENCODINGS.map((e) => [e, []]));
for (let r = 0; r < runs; r++) {
  for (const e of ENCODINGS) {
    const sum = sums.get(e)!;
    const bs = bodies.get(e)!;
    sum.reset();
    const t0 = performance.now();
    for (let k = 0; k < count; k++) {
      const u = viewUpdate(decodeRawTensors(bs[k % bs.length]!, { maxTensors: 3 }).tensors, tensors, e);
      if (u.encoding === 'float32' && firstNonFinite(u.data, accumulateWasm) >= 0) throw new Error('non-finite');
      sum.addEncoded(u, 100);
    }
    aggMs.get(e)!.push((performance.now() - t0) / count);
  }
}

// The error an encoding adds: max |decoded − Δ| relative to max |Δ|, and the mean signed error (bias).
const errors = new Map<UpdateEncoding, { maxRel: number; meanSigned: number }>();
for (const e of ENCODINGS) {
  const delta = deltas[0]!;
  const view = viewUpdate(decodeRawTensors(bodies.get(e)![0]!).tensors, tensors, e);
  const back = decodeRange(view, 0, d);
  let maxErr = 0;
  let maxAbs = 0;
  let signed = 0;
  for (let i = 0; i < d; i++) {
    maxErr = Math.max(maxErr, Math.abs(back[i]! - delta[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(delta[i]!));
    signed += back[i]! - delta[i]!;
  }
  errors.set(e, { maxRel: maxErr / maxAbs, meanSigned: signed / d });
}

const f32Bytes = bodies.get('float32')![0]!.length;
const f32Agg = median(aggMs.get('float32')!);
console.log(`update encodings, ${d.toLocaleString('en')} parameters, ${count} updates × ${runs} runs per encoding (medians)\n`);
console.log('encoding | bytes/update | fewer than float32 | client encode ms | aggregator ms/update | vs float32 | max |error| / max |Δ| | mean signed error');
for (const e of ENCODINGS) {
  const bytes = bodies.get(e)![0]!.length;
  const agg = median(aggMs.get(e)!);
  const err = errors.get(e)!;
  console.log(
    `${e.padEnd(8)} | ${String(bytes).padStart(12)} | ${(f32Bytes / bytes).toFixed(2).padStart(17)}× | ${median(encodeMs.get(e)!).toFixed(2).padStart(16)} | ${agg.toFixed(3).padStart(20)} | ${(agg / f32Agg).toFixed(2).padStart(9)}× | ${err.maxRel.toExponential(2).padStart(22)} | ${err.meanSigned.toExponential(2)}`,
  );
}
for (const s of sums.values()) s.dispose();
