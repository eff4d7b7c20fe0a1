import { describe, expect, it } from 'vitest';
import { encodeChunk } from '#protocol/chunked.ts';
import { decodeTensors, encodeTensors } from '#protocol/safetensors.ts';
import { MIN_PART_BYTES, partOf, RANGE_PARAMS, rangeBounds, rangedMisfit, rangeLayout, rangeParams, validateChunk, versionHeader } from './ranges.ts';

const finite = (d: Float32Array) => d.findIndex((x) => !Number.isFinite(x));

/** The parts the ranges and the master write for a file of `numParams` parameters, as ranged-close.ts puts them together. */
function assemble(numParams: number, R: number, tensors: { name: string; shape: number[] }[], flat: Float32Array): Uint8Array[] {
  const layout = rangeLayout(numParams, 0, R)!;
  const head = versionHeader(tensors, { 'fedge.version': '1' });
  const P = R * 4;
  const outs = Array.from({ length: layout.count }, (_, k) => {
    const { start, end } = rangeBounds(layout, numParams, k);
    return new Uint8Array(flat.buffer, start * 4, (end - start) * 4);
  });
  const parts: Uint8Array[] = [];
  let prefix: Uint8Array = head;
  for (const out of outs) {
    const { part, carry } = partOf(prefix, out, P, head.length);
    parts.push(part);
    prefix = carry;
  }
  if (prefix.length > 0) parts.push(prefix);
  return parts;
}

describe('a ranged version assembled from parts', () => {
  // Small R (no R2 here) with the geometry's cases: a last range shorter than P − D, and one longer
  // (its carry is a final part of its own), and ranges of exactly R.
  for (const numParams of [10_000, 10_240 - 3, 10_240, 8_200]) {
    it(`is the safetensors file of the model, in parts of one size but a shorter last (${numParams} parameters)`, () => {
      const R = 1024;
      const tensors = [
        { name: 'a/kernel', shape: [numParams - 8] },
        { name: 'a/bias', shape: [8] },
      ];
      const flat = Float32Array.from({ length: numParams }, (_, i) => i * 0.5 - 3);
      const parts = assemble(numParams, R, tensors, flat);
      for (const p of parts.slice(0, -1)) expect(p.length).toBe(R * 4);
      expect(parts.at(-1)!.length).toBeLessThanOrEqual(R * 4);
      expect(parts.at(-1)!.length).toBeGreaterThan(0);
      const file = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let at = 0;
      for (const p of parts) {
        file.set(p, at);
        at += p.length;
      }
      const whole = encodeTensors(
        [
          { name: 'a/kernel', shape: [numParams - 8], data: flat.subarray(0, numParams - 8) },
          { name: 'a/bias', shape: [8], data: flat.subarray(numParams - 8) },
        ],
        { 'fedge.version': '1' },
      );
      expect(file).toEqual(whole);
      expect(decodeTensors(file).tensors.map((t) => t.data.length)).toEqual([numParams - 8, 8]);
    });
  }
});

describe('range settings', () => {
  it('takes the default, or a multiple of 65,536 whose float32 bytes make an R2 part', () => {
    expect(rangeParams(undefined)).toBe(RANGE_PARAMS);
    expect(RANGE_PARAMS * 4).toBeGreaterThanOrEqual(MIN_PART_BYTES);
    expect(rangeParams('1376256')).toBe(1_376_256);
    expect(() => rangeParams('1000000')).toThrow(/multiple of 65536/);
    expect(() => rangeParams('65536')).toThrow(/at least 1310720/);
  });

  it('splits only above the threshold, into ceil(P / R) ranges', () => {
    expect(rangeLayout(4_000_000, 4_000_000, RANGE_PARAMS)).toBeNull();
    expect(rangeLayout(100_000_000, 4_000_000, RANGE_PARAMS)).toEqual({ params: RANGE_PARAMS, count: 48 });
    expect(rangeBounds({ params: 10, count: 3 }, 25, 2)).toEqual({ start: 20, end: 25 });
  });

  it('names why a task cannot be split', () => {
    const ok = {
      numParams: 5e6,
      keepsUpdates: false,
      coordinateWise: false,
      asynchronous: false,
      changesUpdates: false,
      privacy: false,
      secureAggregation: false,
      shards: 1,
    };
    expect(rangedMisfit(ok)).toBeNull();
    expect(rangedMisfit({ ...ok, asynchronous: true })).toMatch(/FedBuff/);
    expect(rangedMisfit({ ...ok, changesUpdates: true })).toMatch(/norm/);
    expect(rangedMisfit({ ...ok, privacy: true })).toMatch(/differential privacy/);
    expect(rangedMisfit({ ...ok, secureAggregation: true })).toMatch(/secure aggregation/);
    expect(rangedMisfit({ ...ok, shards: 4 })).toMatch(/shards must be 1/);
    expect(rangedMisfit({ ...ok, numParams: 3e8 })).toMatch(/at most 268435456/);
  });
});

describe('validateChunk', () => {
  const want = { encoding: 'float32' as const, length: 512, baseVersion: 3, index: 1 };
  it('reads a chunk in each encoding as its encoded view', () => {
    const slice = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i));
    for (const encoding of ['float32', 'float16', 'int8'] as const) {
      const v = validateChunk(encodeChunk(slice, encoding, { baseVersion: 3, index: 1 }), { ...want, encoding }, finite);
      expect(v.ok).toBe(true);
      if (v.ok) expect(v.chunk).toMatchObject({ encoding, length: 512 });
    }
  });
  it('refuses a chunk of another place, shape or encoding with its code', () => {
    const slice = new Float32Array(512);
    const cases: [Uint8Array, string][] = [
      [encodeChunk(slice, 'float32', { baseVersion: 2, index: 1 }), 'base_version_mismatch'],
      [encodeChunk(slice, 'float32', { baseVersion: 3, index: 0 }), 'invalid_metadata'],
      [encodeChunk(new Float32Array(511), 'float32', { baseVersion: 3, index: 1 }), 'tensor_mismatch'],
      [encodeChunk(slice, 'float16', { baseVersion: 3, index: 1 }), 'tensor_mismatch'],
      [encodeChunk(new Float32Array(512).fill(Number.POSITIVE_INFINITY), 'float32', { baseVersion: 3, index: 1 }), 'non_finite'],
      [new Uint8Array([1, 2, 3]), 'malformed_update'],
    ];
    for (const [body, code] of cases) expect(validateChunk(body, want, finite)).toMatchObject({ ok: false, code });
  });
});
