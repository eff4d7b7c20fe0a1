import { describe, expect, it } from 'vitest';
import { rng as seeded } from '../../../test/shared/random.ts';
import { decodeRange, encodeUpdate, firstNonFiniteHalf, halfTable, INT8_BLOCK, quantizeInt8, SCALES_TENSOR, toHalf, viewUpdate } from './encoding.ts';
import { decodeRawTensors, encodeRawTensors, WireFormatError } from './safetensors.ts';

const SPECS = [
  { name: 'dense/kernel', shape: [30, 20] },
  { name: 'dense/bias', shape: [20] },
];
const N = 620;

describe('float16', () => {
  it('known values: ties to even, subnormals, signed zero, saturation at ±65504', () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(0.1)).toBe(0x2e66);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(65520)).toBe(0x7bff); // would round to Inf: saturates
    expect(toHalf(-1e9)).toBe(0xfbff);
    expect(toHalf(2 ** -24)).toBe(0x0001); // the smallest subnormal
    expect(toHalf(2 ** -25)).toBe(0x0000); // half of it: tie, to even (0)
    expect(toHalf(3 * 2 ** -25)).toBe(0x0002); // 1.5 × the smallest: tie, to even (2)
    expect(toHalf(-0)).toBe(0x8000);
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1 + 2^-10: to even
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it('every finite float16 survives float32 and back, exactly', () => {
    const t = halfTable();
    let checked = 0;
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(toHalf(t[h]!)).toBe(h);
      checked++;
    }
    expect(checked).toBe(63488);
  });

  it('rounds any float32 in range to its nearest float16', () => {
    const t = halfTable();
    const next = seeded(1);
    for (let i = 0; i < 20_000; i++) {
      const x = Math.fround((next() * 2 - 1) * 2 ** (next() * 40 - 25));
      const h = toHalf(x);
      const err = Math.abs(t[h]! - x);
      // no neighbour is nearer
      for (const other of [h - 1, h + 1])
        if ((other & 0x7c00) !== 0x7c00 && (other & 0x8000) === (h & 0x8000)) expect(err).toBeLessThanOrEqual(Math.abs(t[other]! - x));
    }
  });
});

describe('firstNonFiniteHalf', () => {
  it('finds every NaN and ±Inf pattern at every position, aligned or not, and nothing in finite data', () => {
    const finite = Uint16Array.from({ length: 63488 }, (_, i) => (i < 31744 ? i : i + 1024) & 0xffff);
    expect(finite.every((h) => (h & 0x7c00) !== 0x7c00)).toBe(true);
    expect(firstNonFiniteHalf(finite)).toBe(-1);
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) if ((h & 0x7c00) === 0x7c00) bad.push(h);
    expect(bad).toHaveLength(2048);
    for (const [k, h] of bad.entries()) {
      const a = new Uint16Array(37).fill(0x3c00);
      a[k % 37] = h;
      expect(firstNonFiniteHalf(a)).toBe(k % 37);
    }
    // A view at an odd 2-byte offset (not 4-byte aligned) takes the scalar path.
    const buf = new Uint16Array(41).fill(0x1234);
    buf[30] = 0x7c00;
    expect(firstNonFiniteHalf(buf.subarray(1))).toBe(29);
    expect(firstNonFiniteHalf(buf.subarray(31))).toBe(-1);
  });
});

describe('int8 with per-block scales and stochastic rounding', () => {
  it('scale = max|Δ|/127 per block; each value within one step; an all-zero block stays zero', () => {
    const flat = Float32Array.from({ length: 3 * INT8_BLOCK + 10 }, (_, i) => (i < INT8_BLOCK ? 0 : Math.sin(i) * (1 + (i % 7))));
    const { q, scales } = quantizeInt8(flat, seeded(2));
    expect(scales).toHaveLength(4);
    expect(scales[0]).toBe(0);
    for (let b = 1; b < 4; b++) {
      const block = flat.subarray(b * INT8_BLOCK, Math.min((b + 1) * INT8_BLOCK, flat.length));
      expect(scales[b]).toBe(Math.fround(Math.max(...Array.from(block, Math.abs)) / 127));
    }
    for (let i = 0; i < flat.length; i++) {
      const s = scales[Math.floor(i / INT8_BLOCK)]!;
      expect(Math.abs(q[i]! * s - flat[i]!)).toBeLessThanOrEqual(s * 1.000001);
      expect(Math.abs(q[i]!)).toBeLessThanOrEqual(127);
    }
    expect(q.subarray(0, INT8_BLOCK).every((v) => v === 0)).toBe(true);
  });

  it('is unbiased: the mean of 4,000 encodings of a value is the value', () => {
    const flat = Float32Array.from({ length: INT8_BLOCK }, (_, i) => (i === 0 ? 1 : (i / INT8_BLOCK) * 0.37 - 0.1));
    const next = seeded(3);
    const mean = new Float64Array(flat.length);
    const trials = 4000;
    let s = 0;
    for (let k = 0; k < trials; k++) {
      const { q, scales } = quantizeInt8(flat, next);
      s = scales[0]!;
      for (let i = 0; i < flat.length; i++) mean[i]! += (q[i]! * s) / trials;
    }
    // Each encoding's error is at most s, so the mean's standard error is below s/(2√trials) = s/126: 5 of those bound it.
    for (let i = 0; i < flat.length; i++) expect(Math.abs(mean[i]! - flat[i]!)).toBeLessThan((5 * s) / 126);
    // The bound catches a biased rounding: rounding to nearest (u fixed at 0.5) reads x = 0.3 s as 0 every time.
    const nearest = quantizeInt8(Float32Array.of(1, 0.3 / 127), () => 0.5);
    expect(nearest.q[1]).toBe(0);
    expect(Math.abs(nearest.q[1]! * nearest.scales[0]! - 0.3 / 127)).toBeGreaterThan((5 * nearest.scales[0]!) / 126);
  });
});

describe('update messages in each encoding', () => {
  const flat = Float32Array.from({ length: N }, (_, i) => Math.cos(i) * 0.01);

  for (const encoding of ['float32', 'float16', 'int8'] as const) {
    it(`${encoding}: encodes as safetensors and reads back as views over the message`, () => {
      const { tensors } = encodeUpdate(SPECS, flat, encoding, seeded(4));
      const body = encodeRawTensors(tensors, { 'fedge.baseVersion': '0' });
      const bytesPerParam = { float32: 4, float16: 2, int8: 1 }[encoding];
      expect(body.length).toBeLessThan(N * bytesPerParam + (encoding === 'int8' ? 4 * Math.ceil(N / INT8_BLOCK) : 0) + 400);
      const decoded = decodeRawTensors(body);
      const view = viewUpdate(decoded.tensors, SPECS, encoding);
      expect(view.encoding).toBe(encoding);
      expect(view.length).toBe(N);
      expect(view.data.buffer).toBe(body.buffer); // a view, not a copy
      const back = decodeRange(view, 0, N);
      const tol = encoding === 'float32' ? 0 : encoding === 'float16' ? 0.01 * 2 ** -10 : 0.01 / 127;
      for (let i = 0; i < N; i++) expect(Math.abs(back[i]! - flat[i]!)).toBeLessThanOrEqual(tol * 1.0001);
      expect(Array.from(decodeRange(view, 100, 110))).toEqual(Array.from(back.subarray(100, 110)));
    });
  }

  it('refuses the wrong dtype, a missing or wrong scales tensor, and non-finite values or scales', () => {
    const read = (encoding: 'float32' | 'float16' | 'int8', tensors: ReturnType<typeof encodeUpdate>['tensors'], as = encoding) =>
      viewUpdate(decodeRawTensors(encodeRawTensors(tensors)).tensors, SPECS, as);
    const f16 = encodeUpdate(SPECS, flat, 'float16').tensors;
    expect(() => read('float16', f16, 'float32')).toThrow(/is F16; this task takes float32 updates/);
    expect(() => read('float16', f16, 'int8')).toThrow(WireFormatError);
    const i8 = encodeUpdate(SPECS, flat, 'int8').tensors;
    expect(() => read('int8', i8.slice(1), 'int8')).toThrow(/expected 3 tensors/);
    const wrongScales = [{ ...i8[0]!, shape: [2], bytes: i8[0]!.bytes.subarray(0, 8) }, ...i8.slice(1)];
    expect(() => read('int8', wrongScales)).toThrow(new RegExp(`"${SCALES_TENSOR}" of shape \\[3\\]`));
    const nanScale = [{ ...i8[0]!, bytes: new Uint8Array(Float32Array.of(1, Number.NaN, 1).buffer) }, ...i8.slice(1)];
    expect(() => read('int8', nanScale)).toThrow(expect.objectContaining({ code: 'non_finite' }));
    const inf = f16.map((t, i) => (i === 1 ? { ...t, bytes: new Uint8Array(Uint16Array.from({ length: 20 }, () => 0x7c00).buffer) } : t));
    expect(() => read('float16', inf)).toThrow(expect.objectContaining({ code: 'non_finite', message: expect.stringMatching(/flat index 600/) }));
  });
});
