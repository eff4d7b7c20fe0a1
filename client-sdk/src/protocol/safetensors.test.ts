import { describe, expect, it } from 'vitest';
import { rng } from '../../../test/shared/random.ts';
import { concatTensors, decodeTensors, encodeTensors, splitFlat, WireFormatError, type WireTensor } from './safetensors.ts';

const sample: WireTensor[] = [
  { name: 'dense/kernel', shape: [3, 2], data: Float32Array.from([1, -2, 3.5, 0, 1e-7, -1e30]) },
  { name: 'dense/bias', shape: [2], data: Float32Array.from([0.25, -0.5]) },
  { name: 'scalar', shape: [], data: Float32Array.from([42]) },
];

describe('safetensors codec', () => {
  it('round-trips names, shapes, values and metadata', () => {
    const bytes = encodeTensors(sample, { round: '7', base_version: '3' });
    const { tensors, metadata } = decodeTensors(bytes);
    expect(metadata).toEqual({ round: '7', base_version: '3' });
    expect(tensors.map((t) => [t.name, t.shape, Array.from(t.data)])).toEqual(sample.map((t) => [t.name, t.shape, Array.from(t.data)]));
  });

  it('writes the layout Python safetensors reads: u64 LE header length, space-padded JSON, data on an 8-byte boundary', () => {
    const bytes = encodeTensors(sample.slice(1, 2));
    const n = new DataView(bytes.buffer).getUint32(0, true);
    expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(0);
    expect((8 + n) % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(JSON.parse(header)).toEqual({ 'dense/bias': { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
    expect(header.trimEnd().length).toBeLessThanOrEqual(n);
    expect(bytes.length).toBe(8 + n + 8);
    expect(Array.from(new Float32Array(bytes.buffer, 8 + n, 2))).toEqual([0.25, -0.5]);
  });

  it('decodes float32 tensors as zero-copy views over the received buffer', () => {
    const bytes = encodeTensors(sample);
    const { tensors } = decodeTensors(bytes.buffer as ArrayBuffer);
    for (const t of tensors) expect(t.data.buffer).toBe(bytes.buffer);
  });

  it('copies when the data is misaligned in memory rather than failing', () => {
    const bytes = encodeTensors(sample);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const { tensors } = decodeTensors(shifted.subarray(1));
    expect(Array.from(tensors[0]!.data)).toEqual(Array.from(sample[0]!.data));
  });

  it('splits a flat vector into tensor views and concatenates them back', () => {
    const flat = Float32Array.from({ length: 9 }, (_, i) => i);
    const parts = splitFlat(
      [
        { name: 'a', shape: [2, 3] },
        { name: 'b', shape: [3] },
      ],
      flat,
    );
    expect(parts.map((p) => [p.name, p.shape, Array.from(p.data)])).toEqual([
      ['a', [2, 3], [0, 1, 2, 3, 4, 5]],
      ['b', [3], [6, 7, 8]],
    ]);
    expect(parts[1]!.data.buffer).toBe(flat.buffer);
    expect(Array.from(concatTensors(parts))).toEqual(Array.from(flat));
  });

  it('treats names that are Object.prototype members as plain names (constructor, toString, __proto__)', () => {
    const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];
    const tensors = names.map((name, i) => ({ name, shape: [2], data: Float32Array.from([i, -i]) }));
    const bytes = encodeTensors(tensors, JSON.parse('{"__proto__":"p","constructor":"c","fedge.base_version":"1"}'));
    const decoded = decodeTensors(bytes);
    expect(decoded.tensors.map((t) => [t.name, Array.from(t.data)])).toEqual(names.map((n, i) => [n, [i, -i]]));
    expect(Object.entries(decoded.metadata)).toEqual([
      ['__proto__', 'p'],
      ['constructor', 'c'],
      ['fedge.base_version', '1'],
    ]);
    // The decoded map has no prototype: an absent key is absent, not an inherited function.
    expect(decoded.metadata.toString).toBeUndefined();
    expect(() => encodeTensors([tensors[0]!, tensors[0]!])).toThrow(/duplicate or reserved tensor name "constructor"/);
  });

  it('decodes an empty tensor that shares its offset with the next one, whatever the header order (found by fast-check)', () => {
    // JSON objects list integer-like keys first, so "0" precedes " " in the header though it follows it in the data.
    const out = decodeTensors(
      encodeTensors([
        { name: ' ', shape: [0], data: new Float32Array(0) },
        { name: '0', shape: [], data: Float32Array.of(5) },
      ]),
    );
    expect(out.tensors.map((t) => [t.name, Array.from(t.data)])).toEqual([
      [' ', []],
      ['0', [5]],
    ]);
  });

  it('refuses to encode data that does not match the shape', () => {
    expect(() => encodeTensors([{ name: 'x', shape: [2, 2], data: new Float32Array(3) }])).toThrow(/needs 4 values/);
  });

  const bad: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ['empty', () => new Uint8Array(0), /shorter than/],
    ['truncated data', (b) => b.subarray(0, b.length - 4), /truncated: tensors need/],
    ['truncated header', (b) => b.subarray(0, 20), /truncated: header/],
    ['trailing bytes', (b) => Uint8Array.from([...b, 1, 2, 3, 4]), /trailing bytes/],
    [
      'huge header length',
      (b) => {
        const c = b.slice();
        new DataView(c.buffer).setUint32(4, 1, true);
        return c;
      },
      /exceeds/,
    ],
    [
      'non-JSON header',
      (b) => {
        const c = b.slice();
        c[8] = 0x7b;
        c[9] = 0x7b;
        return c;
      },
      /not valid UTF-8 JSON/,
    ],
  ];
  for (const [name, mutate, message] of bad) {
    it(`rejects a ${name} message with malformed_update`, () => {
      const bytes = mutate(encodeTensors(sample));
      expect(() => decodeTensors(bytes)).toThrow(message);
      try {
        decodeTensors(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(WireFormatError);
        expect((e as WireFormatError).code).toBe('malformed_update');
      }
    });
  }

  function withHeader(header: unknown, dataBytes: number): Uint8Array {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setUint32(0, json.length, true);
    out.set(json, 8);
    return out;
  }

  it('rejects other dtypes with tensor_mismatch, and bad offsets, gaps and overlaps with malformed_update', () => {
    const f16 = withHeader({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4);
    expect(() => decodeTensors(f16)).toThrow(expect.objectContaining({ code: 'tensor_mismatch' }));
    const gap = withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8);
    expect(() => decodeTensors(gap)).toThrow(/gap or overlap/);
    const overlap = withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8);
    expect(() => decodeTensors(overlap)).toThrow(/gap or overlap/);
    const wrongSize = withHeader({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8);
    expect(() => decodeTensors(wrongSize)).toThrow(/do not match shape/);
    const negative = withHeader({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 0);
    expect(() => decodeTensors(negative)).toThrow(/invalid shape/);
    const metaNotString = withHeader({ __metadata__: { a: 1 } }, 0);
    expect(() => decodeTensors(metaNotString)).toThrow(/not a string/);
    const arrayHeader = withHeader([1, 2], 0);
    expect(() => decodeTensors(arrayHeader)).toThrow(/not a JSON object/);
  });

  it('never throws anything but WireFormatError on random or mutated input (seeded fuzz, 5,000 cases)', () => {
    const next = rng(20261125);
    const valid = encodeTensors(sample, { round: '1' });
    let decoded = 0;
    for (let i = 0; i < 5_000; i++) {
      let input: Uint8Array;
      const mode = i % 4;
      if (mode === 0) {
        input = new Uint8Array(Math.floor(next() * 256));
        for (let j = 0; j < input.length; j++) input[j] = Math.floor(next() * 256);
      } else if (mode === 1) {
        input = valid.slice();
        const flips = 1 + Math.floor(next() * 8);
        for (let f = 0; f < flips; f++) input[Math.floor(next() * input.length)] = Math.floor(next() * 256);
      } else if (mode === 2) {
        input = valid.subarray(0, Math.floor(next() * valid.length));
      } else {
        // Plausible headers with random numbers in them.
        const n = () => Math.floor((next() - 0.2) * 40);
        input = withHeader(
          { t: { dtype: next() < 0.9 ? 'F32' : 'I8', shape: [n(), n()], data_offsets: [n(), n()] }, __metadata__: next() < 0.5 ? {} : { k: n() } },
          Math.max(0, n()),
        );
      }
      try {
        const out = decodeTensors(input);
        decoded++;
        for (const t of out.tensors) expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      } catch (e) {
        if (!(e instanceof WireFormatError)) throw new Error(`case ${i} (mode ${mode}) threw ${String(e)}`);
      }
    }
    // Some mutations land in the float data and still decode: the fuzz exercises both paths.
    expect(decoded).toBeGreaterThan(0);
  });
});
