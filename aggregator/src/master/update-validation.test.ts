/** Update validation, case by case: each refusal with its code and message, and what an accepted update yields. */
import { describe, expect, it } from 'vitest';
import { UPDATE_META } from '#protocol/messages.ts';
import { encodeTensors, type WireTensor } from '#protocol/safetensors.ts';
import { firstNonFinite } from '../kernels/running-sum.ts';
import type { TaskSpec } from './task-spec.ts';
import { validateUpdate } from './update-validation.ts';

const spec: TaskSpec = {
  taskId: 't',
  tensors: [
    { name: 'dense/kernel', shape: [2, 3] },
    { name: 'dense/bias', shape: [3] },
  ],
  numParams: 9,
  rules: { clientsPerRound: 3, minClients: 3, deadlineSeconds: 60, overSelection: 1, maxExamplesPerClient: 500 },
};
const kernel = (data = Float32Array.of(1, 2, 3, 4, 5, 6)): WireTensor => ({ name: 'dense/kernel', shape: [2, 3], data });
const bias = (data = Float32Array.of(7, 8, 9)): WireTensor => ({ name: 'dense/bias', shape: [3], data });

function body(tensors: WireTensor[] = [kernel(), bias()], meta: Record<string, string | undefined> = {}): Uint8Array {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries({ [UPDATE_META.baseVersion]: '4', [UPDATE_META.numExamples]: '32', ...meta })) if (v !== undefined) metadata[k] = v;
  return encodeTensors(tensors, metadata);
}
const validate = (b: Uint8Array) => validateUpdate(b, spec, 4, firstNonFinite);

describe('validateUpdate', () => {
  it('accepts a valid update: Δ in the task order, its example count, its metrics', () => {
    const r = validate(body([kernel(), bias()], { [UPDATE_META.metrics]: '{"loss":0.25,"accuracy":0.9}' }));
    expect(r).toEqual({
      ok: true,
      update: { encoding: 'float32', length: 9, data: Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9) },
      numExamples: 32,
      metrics: { loss: 0.25, accuracy: 0.9 },
      unclipped: null,
    });
  });

  it('reorders tensors sent in another order, and has no metrics when none were sent', () => {
    const r = validate(body([bias(), kernel()]));
    expect(r).toEqual({
      ok: true,
      update: { encoding: 'float32', length: 9, data: Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9) },
      numExamples: 32,
      metrics: null,
      unclipped: null,
    });
  });

  it('reads the unclipped bit of DP updates that clip on the client', () => {
    expect(validate(body(undefined, { [UPDATE_META.unclipped]: '1' }))).toMatchObject({ ok: true, unclipped: true });
    expect(validate(body(undefined, { [UPDATE_META.unclipped]: '0' }))).toMatchObject({ ok: true, unclipped: false });
  });

  it('returns a view of the received bytes when they are already in order (no copy)', () => {
    const bytes = body();
    const r = validate(bytes);
    expect(r.ok && r.update.data.buffer).toBe(bytes.buffer);
  });

  const refusals: [string, Uint8Array, string, RegExp][] = [
    ['a truncated message', body().subarray(0, 20), 'malformed_update', /truncated/],
    ['no base version', body(undefined, { [UPDATE_META.baseVersion]: undefined }), 'invalid_metadata', /fedge\.base_version/],
    ['a base version that is not a number', body(undefined, { [UPDATE_META.baseVersion]: 'v4' }), 'invalid_metadata', /version number/],
    [
      'another base version',
      body(undefined, { [UPDATE_META.baseVersion]: '3' }),
      'base_version_mismatch',
      /trained on version 3; this round's base version is 4/,
    ],
    ['no example count', body(undefined, { [UPDATE_META.numExamples]: undefined }), 'invalid_example_count', /got null/],
    ['a zero example count', body(undefined, { [UPDATE_META.numExamples]: '0' }), 'invalid_example_count', /positive integer, got "0"/],
    ['an example count in exponent form', body(undefined, { [UPDATE_META.numExamples]: '1e2' }), 'invalid_example_count', /got "1e2"/],
    ['an example count above the cap', body(undefined, { [UPDATE_META.numExamples]: '501' }), 'invalid_example_count', /501 exceeds the task's cap of 500/],
    ['metrics that are not JSON', body(undefined, { [UPDATE_META.metrics]: '{loss' }), 'invalid_metadata', /fedge\.metrics/],
    ['a metric that is not finite', body(undefined, { [UPDATE_META.metrics]: '{"loss":"NaN"}' }), 'invalid_metadata', /finite numbers/],
    ['a metric with a bad name', body(undefined, { [UPDATE_META.metrics]: '{"1loss":1}' }), 'invalid_metadata', /named like/],
    ['metrics as an array', body(undefined, { [UPDATE_META.metrics]: '[1]' }), 'invalid_metadata', /JSON object/],
    ['an unclipped bit that is not 0 or 1', body(undefined, { [UPDATE_META.unclipped]: 'yes' }), 'invalid_metadata', /must be 1 or 0, got "yes"/],
    [
      '33 metrics',
      body(undefined, { [UPDATE_META.metrics]: JSON.stringify(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`m${i}`, i]))) }),
      'invalid_metadata',
      /at most 32/,
    ],
    ['a missing tensor', body([kernel()]), 'tensor_mismatch', /missing tensor "dense\/bias"/],
    ['an extra tensor', body([kernel(), bias(), { name: 'x', shape: [1], data: Float32Array.of(0) }]), 'tensor_mismatch', /expected 2 tensors, got 3/],
    ['a renamed tensor', body([kernel(), { ...bias(), name: 'dense/offset' }]), 'tensor_mismatch', /missing tensor "dense\/bias"/],
    [
      'a transposed tensor',
      body([{ name: 'dense/kernel', shape: [3, 2], data: new Float32Array(6) }, bias()]),
      'tensor_mismatch',
      /has shape \[3,2\], expected \[2,3\]/,
    ],
    [
      'a NaN',
      body([kernel(), bias(Float32Array.of(7, Number.NaN, 9))]),
      'non_finite',
      /non-finite value NaN at flat index 7 \(tensor "dense\/bias" element 1\)/,
    ],
    [
      'an Infinity',
      body([kernel(Float32Array.of(1, 2, Number.POSITIVE_INFINITY, 4, 5, 6)), bias()]),
      'non_finite',
      /Infinity at flat index 2 \(tensor "dense\/kernel" element 2\)/,
    ],
  ];
  for (const [what, bytes, code, message] of refusals) {
    it(`refuses ${what} with ${code}`, () => {
      const r = validate(bytes);
      expect(r.ok).toBe(false);
      expect(r).toMatchObject({ code, message: expect.stringMatching(message) });
    });
  }

  it('checks metadata before tensors: an update wrong in both gets the metadata code', () => {
    expect(validate(body([kernel()], { [UPDATE_META.baseVersion]: '9' }))).toMatchObject({ code: 'base_version_mismatch' });
  });
});
