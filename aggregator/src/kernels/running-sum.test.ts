import { describe, expect, it } from 'vitest';
import { decodeRange, type EncodedView, quantizeInt8 } from '#protocol/encoding.ts';
import { decodeTensors, encodeTensors } from '#protocol/safetensors.ts';
import { rng } from '#test/random.ts';
import { createRunningSum, firstNonFinite, type RunningSum } from './running-sum.ts';
import { accumulateWasm } from './wasm-node.ts';

/** Updates with mixed magnitudes and signs, some exact zeros, -0 and denormals. */
function randomUpdates(count: number, length: number, seed: number): Float32Array[] {
  const r = rng(seed);
  const out: Float32Array[] = [];
  for (let k = 0; k < count; k++) {
    const u = new Float32Array(length);
    const scale = 10 ** (Math.floor(r() * 7) - 3);
    for (let i = 0; i < length; i++) {
      const x = r();
      u[i] = x < 0.01 ? 0 : x < 0.015 ? -0 : x < 0.02 ? 1e-40 : (r() - 0.5) * scale;
    }
    out.push(u);
  }
  return out;
}

function randomWeights(count: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: count }, (_, k) => (k % 3 === 2 ? r() * 10 : 1 + Math.floor(r() * 1000)));
}

/** The naive reference: the definition, one update after the other, in float64. */
function naiveSum(updates: readonly Float32Array[], weights: readonly number[], length: number): Float64Array {
  const s = new Float64Array(length);
  for (let k = 0; k < updates.length; k++) for (let i = 0; i < length; i++) s[i] = s[i]! + weights[k]! * updates[k]![i]!;
  return s;
}

/** Same bits (distinguishes -0 from 0; lengths must match). */
function expectSameBits(a: Float64Array | Float32Array, b: Float64Array | Float32Array): void {
  expect(a.length).toBe(b.length);
  const ab = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const bb = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  let first = -1;
  for (let i = 0; i < ab.length; i++) {
    if (ab[i] !== bb[i]) {
      first = Math.floor(i / a.BYTES_PER_ELEMENT);
      break;
    }
  }
  expect(first, first >= 0 ? `element ${first}: ${a[first]} vs ${b[first]}` : '').toBe(-1);
}

const SLICE = 16384; // running-sum.ts's slice; lengths around it cross slice boundaries
const LENGTHS = [0, 1, 3, 5, 1023, SLICE + 5, 3 * SLICE + 7];

const impls = [
  { name: 'js', make: (n: number): RunningSum => createRunningSum(n) },
  { name: 'wasm', make: (n: number): RunningSum => createRunningSum(n, { wasm: accumulateWasm }) },
] as const;

describe.each(impls)('RunningSum ($name)', ({ name, make }) => {
  it('reports its implementation and starts empty', () => {
    const rs = make(4);
    expect(rs.implementation).toBe(name);
    expect(rs.length).toBe(4);
    expect(rs.totalWeight).toBe(0);
    expect(rs.count).toBe(0);
    expect(Array.from(rs.sum())).toEqual([0, 0, 0, 0]);
  });

  it('hand-computed: two updates, then FedAvg finalize', () => {
    const rs = make(3);
    rs.add(new Float32Array([1, 2, 3]), 2);
    rs.add(new Float32Array([0.5, -1, 4]), 1);
    expect(Array.from(rs.sum())).toEqual([2.5, 3, 10]);
    expect(rs.totalWeight).toBe(3);
    expect(rs.count).toBe(2);
    const out = new Float32Array(3);
    rs.finalizeInto(new Float32Array([1, 1, 1]), out);
    expect(Array.from(out)).toEqual([Math.fround(1 + 2.5 / 3), 2, Math.fround(1 + 10 / 3)]);
  });

  it('hand-computed: five values (SIMD body + scalar tail), batch of three', () => {
    const rs = make(5);
    rs.addBatch([new Float32Array([1, 1, 1, 1, 1]), new Float32Array([1, 2, 3, 4, 5]), new Float32Array([-2, 0, 2, 0.25, -0.5])], [1, 10, 4]);
    expect(Array.from(rs.sum())).toEqual([3, 21, 39, 42, 49]);
    expect(rs.count).toBe(3);
    expect(rs.totalWeight).toBe(15);
  });

  it.each(LENGTHS)('length %i: add and addBatch (1..9 updates) equal the naive float64 sum bit for bit', (n) => {
    const updates = randomUpdates(9, n, n + 1);
    const weights = randomWeights(9, n + 2);
    for (let m = 1; m <= 9; m++) {
      const ref = naiveSum(updates.slice(0, m), weights.slice(0, m), n);
      const a = make(n);
      for (let k = 0; k < m; k++) a.add(updates[k]!, weights[k]!);
      expectSameBits(a.sum(), ref);
      const b = make(n);
      b.addBatch(updates.slice(0, m), weights.slice(0, m));
      expectSameBits(b.sum(), ref);
      expect(b.count).toBe(m);
      expect(b.totalWeight).toBe(a.totalWeight);
    }
  });

  it('random 100 x 20011: relative error vs a compensated reference <= 1e-9', () => {
    const n = 20011;
    const updates = randomUpdates(100, n, 7);
    const weights = randomWeights(100, 8);
    const rs = make(n);
    for (let k = 0; k < 100; k += 7) rs.addBatch(updates.slice(k, k + 7), weights.slice(k, k + 7));
    const s = rs.sum();
    let worst = 0;
    for (let i = 0; i < n; i++) {
      // Kahan-Babuska summation of the same products: an independent, more accurate reference
      let sum = 0;
      let c = 0;
      let mag = 0;
      for (let k = 0; k < 100; k++) {
        const x = weights[k]! * updates[k]![i]!;
        mag += Math.abs(x);
        const t = sum + x;
        c += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
        sum = t;
      }
      if (mag > 0) worst = Math.max(worst, Math.abs(s[i]! - (sum + c)) / mag);
    }
    expect(worst).toBeLessThanOrEqual(1e-9);
  });

  it('mixing add and addBatch in any grouping gives the same bits as sequential add', () => {
    const n = 2 * SLICE + 3;
    const updates = randomUpdates(11, n, 21);
    const weights = randomWeights(11, 22);
    const seq = make(n);
    for (let k = 0; k < 11; k++) seq.add(updates[k]!, weights[k]!);
    const mixed = make(n);
    mixed.add(updates[0]!, weights[0]!);
    mixed.addBatch(updates.slice(1, 6), weights.slice(1, 6));
    mixed.addBatch([], []);
    mixed.add(updates[6]!, weights[6]!);
    mixed.addBatch(updates.slice(7), weights.slice(7));
    expectSameBits(mixed.sum(), seq.sum());
    expect(mixed.totalWeight).toBe(seq.totalWeight);
    expect(mixed.count).toBe(11);
  });

  it('accepts updates at any 4-byte-aligned byteOffset', () => {
    const n = 1027;
    const [u] = randomUpdates(1, n, 5);
    const buf = new ArrayBuffer(4 * (n + 3));
    const shifted = new Float32Array(buf, 4, n); // byteOffset 4: not 8- or 16-aligned
    shifted.set(u!);
    const a = make(n);
    a.add(shifted, 3);
    a.addBatch([shifted, u!], [1, 2]);
    const b = make(n);
    b.add(u!, 3);
    b.add(u!, 1);
    b.add(u!, 2);
    expectSameBits(a.sum(), b.sum());
  });

  it('merge of two partial sums equals one sum over all updates', () => {
    const n = SLICE + 9;
    const updates = randomUpdates(10, n, 31);
    const weights = randomWeights(10, 32);
    const all = make(n);
    all.addBatch(updates, weights);
    const left = make(n);
    left.addBatch(updates.slice(0, 4), weights.slice(0, 4));
    const right = make(n);
    right.addBatch(updates.slice(4), weights.slice(4));
    left.merge({ sum: right.sum(), totalWeight: right.totalWeight, count: right.count });
    expect(left.count).toBe(10);
    expect(left.totalWeight).toBeCloseTo(all.totalWeight, 9);
    const a = all.sum();
    const m = left.sum();
    for (let i = 0; i < n; i++) expect(Math.abs(m[i]! - a[i]!)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(a[i]!)));
  });

  it('merge is exact when every partial sum is exact (integer data)', () => {
    const n = 37;
    const u = (k: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + k) % 13) - 6);
    const all = make(n);
    const a = make(n);
    const b = make(n);
    for (let k = 0; k < 6; k++) {
      all.add(u(k), k + 1);
      (k % 2 ? a : b).add(u(k), k + 1);
    }
    a.merge({ sum: b.sum(), totalWeight: b.totalWeight, count: b.count });
    expectSameBits(a.sum(), all.sum());
    expect(a.totalWeight).toBe(21);
    expect(a.count).toBe(6);
  });

  it('load restores a checkpoint; continuing from it is bit-identical to never stopping', () => {
    const n = 5 * 1023;
    const updates = randomUpdates(8, n, 41);
    const weights = randomWeights(8, 42);
    const straight = make(n);
    for (let k = 0; k < 8; k++) straight.add(updates[k]!, weights[k]!);
    const first = make(n);
    first.addBatch(updates.slice(0, 5), weights.slice(0, 5));
    const checkpoint = { sum: first.sum().slice(), totalWeight: first.totalWeight, count: first.count };
    const resumed = make(n);
    resumed.add(updates[7]!, 1); // garbage that load must overwrite
    resumed.load(checkpoint.sum, checkpoint.totalWeight, checkpoint.count);
    resumed.addBatch(updates.slice(5), weights.slice(5));
    expectSameBits(resumed.sum(), straight.sum());
    expect(resumed.count).toBe(8);
    expect(resumed.totalWeight).toBe(straight.totalWeight);
  });

  it('reset empties the sum and keeps working', () => {
    const rs = make(6);
    rs.add(new Float32Array([1, 2, 3, 4, 5, 6]), 2);
    rs.reset();
    expect(Array.from(rs.sum())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(rs.totalWeight).toBe(0);
    expect(rs.count).toBe(0);
    rs.add(new Float32Array([1, 1, 1, 1, 1, 1]), 1);
    expect(Array.from(rs.sum())).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it.each(LENGTHS.filter((n) => n > 0))('length %i: finalizeInto equals out = f32(base + sum * (1/W)), also in place', (n) => {
    const updates = randomUpdates(3, n, 51 + n);
    const [base] = randomUpdates(1, n, 52 + n);
    const rs = make(n);
    rs.addBatch(updates, [3, 5, 7]);
    const s = rs.sum();
    const expected = new Float32Array(n);
    for (let i = 0; i < n; i++) expected[i] = base![i]! + s[i]! * (1 / 15);
    const out = new Float32Array(n);
    rs.finalizeInto(base!, out);
    expectSameBits(out, expected);
    const inPlace = base!.slice();
    rs.finalizeInto(inPlace, inPlace);
    expectSameBits(inPlace, expected);
  });

  it('finalize of length 0 and of zero total weight', () => {
    const empty = make(0);
    empty.add(new Float32Array(0), 1);
    empty.finalizeInto(new Float32Array(0), new Float32Array(0));
    const rs = make(2);
    expect(() => rs.finalizeInto(new Float32Array(2), new Float32Array(2))).toThrow(RangeError);
  });

  it('rejects wrong lengths, non-finite weights and bad checkpoints without changing the sum', () => {
    const rs = make(3);
    rs.add(new Float32Array([1, 2, 3]), 1);
    expect(() => rs.add(new Float32Array(2), 1)).toThrow(RangeError);
    expect(() => rs.add(new Float32Array(3), Number.NaN)).toThrow(RangeError);
    expect(() => rs.add(new Float32Array(3), Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => rs.addBatch([new Float32Array(3)], [])).toThrow(RangeError);
    expect(() => rs.addBatch([new Float32Array(3), new Float32Array(4)], [1, 1])).toThrow(RangeError);
    expect(() => rs.load(new Float64Array(2), 1, 1)).toThrow(RangeError);
    expect(() => rs.load(new Float64Array(3), 1, 1.5)).toThrow(RangeError);
    expect(() => rs.merge({ sum: new Float64Array(4), totalWeight: 1, count: 1 })).toThrow(RangeError);
    expect(() => rs.finalizeInto(new Float32Array(3), new Float32Array(2))).toThrow(RangeError);
    expect(Array.from(rs.sum())).toEqual([1, 2, 3]);
    expect(rs.count).toBe(1);
    expect(rs.totalWeight).toBe(1);
    expect(() => createRunningSum(-1)).toThrow(RangeError);
    expect(() => createRunningSum(1.5)).toThrow(RangeError);
  });

  it('staging: updates decoded in place give the same bits as ordinary buffers, and the area can grow', () => {
    const n = SLICE + 11;
    const updates = randomUpdates(6, n, 61);
    const weights = randomWeights(6, 62);
    const plain = make(n);
    plain.addBatch(updates, weights);

    const rs = make(n);
    rs.add(updates[0]!, weights[0]!);
    const views: Float32Array[] = [];
    const messages = updates.slice(1).map((u) => encodeTensors([{ name: 'w', shape: [n], data: u }]));
    const total = messages.reduce((t, m) => t + m.length, 0);
    const area = rs.staging(total); // may grow the memory: take sum() views only after this
    let at = 0;
    for (const m of messages) {
      area.set(m, at);
      const { tensors } = decodeTensors(area.subarray(at, at + m.length));
      expect(tensors[0]!.data.buffer).toBe(area.buffer); // zero-copy view into the staging area
      views.push(tensors[0]!.data);
      at += m.length;
    }
    rs.add(views[0]!, weights[1]!);
    rs.addBatch(views.slice(1, 4).concat([updates[5]!]), weights.slice(2)); // staged and plain mixed
    expectSameBits(rs.sum(), plain.sum());
    for (const v of views) expect(firstNonFinite(v)).toBe(-1);
    views[2]![n - 1] = Number.NaN;
    expect(firstNonFinite(views[2]!)).toBe(n - 1);

    // growing again keeps the sum; a finalize into a staged view works in place
    const big = rs.staging(total + 8 * n);
    expect(big.byteLength).toBe(total + 8 * n);
    expectSameBits(rs.sum(), plain.sum());
    const out = new Float32Array(big.buffer, big.byteOffset, n);
    const expected = new Float32Array(n);
    plain.finalizeInto(new Float32Array(n), expected);
    rs.finalizeInto(new Float32Array(n), out);
    expectSameBits(out, expected);
  });

  it('dispose makes later calls throw', () => {
    const rs = make(3);
    rs.dispose();
    expect(() => rs.add(new Float32Array(3), 1)).toThrow(/disposed/);
    expect(() => rs.sum()).toThrow(/disposed/);
  });
});

describe('wasm and js agree', () => {
  it('bit-identical sums and finalized models over 40 random updates of 50,001 values', () => {
    const n = 50_001;
    const updates = randomUpdates(40, n, 71);
    const weights = randomWeights(40, 72);
    const js = createRunningSum(n);
    const wasm = createRunningSum(n, { wasm: accumulateWasm });
    const wasmSeq = createRunningSum(n, { wasm: accumulateWasm });
    for (let k = 0; k < 40; k += 6) {
      js.addBatch(updates.slice(k, k + 6), weights.slice(k, k + 6));
      wasm.addBatch(updates.slice(k, k + 6), weights.slice(k, k + 6));
    }
    for (let k = 0; k < 40; k++) wasmSeq.add(updates[k]!, weights[k]!);
    expectSameBits(wasm.sum(), js.sum());
    expectSameBits(wasmSeq.sum(), js.sum());
    const [base] = randomUpdates(1, n, 73);
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    js.finalizeInto(base!, a);
    wasm.finalizeInto(base!, b);
    expectSameBits(a, b);
  });

  it('two wasm running sums are independent (separate memories)', () => {
    const a = createRunningSum(4, { wasm: accumulateWasm });
    const b = createRunningSum(4, { wasm: accumulateWasm });
    a.add(new Float32Array([1, 2, 3, 4]), 1);
    expect(Array.from(b.sum())).toEqual([0, 0, 0, 0]);
    b.merge({ sum: a.sum(), totalWeight: a.totalWeight, count: a.count });
    b.merge({ sum: a.sum(), totalWeight: a.totalWeight, count: a.count });
    expect(Array.from(b.sum())).toEqual([2, 4, 6, 8]);
    expect(b.count).toBe(2);
  });

  it("a view into a running sum's own memory outside its staging area is refused", () => {
    const rs = createRunningSum(8, { wasm: accumulateWasm });
    rs.add(new Float32Array(8).fill(1), 2);
    const s = rs.sum();
    const own = new Float32Array(s.buffer, 0, 8);
    expect(() => rs.add(own, 1)).toThrow(RangeError);
    expect(() => rs.addBatch([new Float32Array(8).fill(5), own], [1, 1])).toThrow(RangeError); // nothing folded
    expect(() => rs.finalizeInto(new Float32Array(8), own)).toThrow(RangeError);
    expect(Array.from(rs.sum())).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    expect(rs.count).toBe(1);
  });
});

describe('firstNonFinite', () => {
  const modes = [
    { mode: 'js', check: (d: Float32Array) => firstNonFinite(d) },
    { mode: 'wasm', check: (d: Float32Array) => firstNonFinite(d, accumulateWasm) },
    {
      mode: 'wasm, staged in place',
      check: (d: Float32Array) => {
        const rs = createRunningSum(0, { wasm: accumulateWasm });
        const area = rs.staging(d.byteLength + 4);
        const v = new Float32Array(area.buffer, area.byteOffset + 4, d.length); // odd 4-byte offset
        v.set(d);
        return firstNonFinite(v);
      },
    },
  ] as const;

  describe.each(modes)('$mode', ({ check }) => {
    it('returns -1 for finite data, including extremes, -0 and denormals', () => {
      expect(check(new Float32Array(0))).toBe(-1);
      const d = new Float32Array(1029);
      const extremes = [3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45, -1.401298464324817e-45, -0, 1.1754943508222875e-38];
      for (let i = 0; i < d.length; i++) d[i] = extremes[i % extremes.length]!;
      expect(check(d)).toBe(-1);
    });

    const lengths = [1, 3, 15, 16, 17, 1023, 1024, 2053, 5000];
    const bad = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    it.each(lengths)('length %i: finds NaN, +Inf and -Inf at the start, around block edges and at the tail', (n) => {
      const positions = [...new Set([0, 1, 7, 15, 16, 17, 1023, 1024, 1025, Math.floor(n / 2), n - 2, n - 1].filter((p) => p >= 0 && p < n))];
      for (const v of bad) {
        for (const p of positions) {
          const d = new Float32Array(n).fill(0.5);
          d[p] = v;
          expect(check(d), `value ${v} at ${p}`).toBe(p);
          if (p + 1 < n) {
            d[n - 1] = Number.NaN; // a later bad value must not win
            expect(check(d)).toBe(p);
          }
        }
      }
    });

    it('reports the first of several, and NaN payloads / negative NaN', () => {
      const d = new Float32Array(100).fill(1);
      const bits = new Uint32Array(d.buffer);
      bits[70] = 0xffc00001; // negative quiet NaN with payload
      bits[40] = 0x7f800001; // signalling NaN
      expect(check(d)).toBe(40);
      bits[40] = 0x7f7fffff; // largest finite
      expect(check(d)).toBe(70);
    });
  });
});

describe('compressed updates (addEncoded)', () => {
  /** Every finite float16 bit pattern once (63,488), in a shuffled order, plus a tail past a slice. */
  function allHalves(seed: number): Uint16Array {
    const finite: number[] = [];
    for (let h = 0; h < 65536; h++) if ((h & 0x7c00) !== 0x7c00) finite.push(h);
    const r = rng(seed);
    for (let i = finite.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [finite[i], finite[j]] = [finite[j]!, finite[i]!];
    }
    return Uint16Array.from([...finite, ...finite.slice(0, 3 * SLICE + 7 - (finite.length % SLICE))]);
  }

  function int8Update(length: number, seed: number): EncodedView {
    const flat = randomUpdates(1, length, seed)[0]!;
    const r = rng(seed + 1);
    const { q, scales } = quantizeInt8(flat, r);
    return { encoding: 'int8', length, data: q, scales };
  }

  it('float16: every finite half is read as its exact value, wasm and js bit-identical, as add() of the decoded floats', () => {
    const h = allHalves(5);
    const u: EncodedView = { encoding: 'float16', length: h.length, data: h };
    const decoded = decodeRange(u, 0, h.length);
    expect(decoded.every(Number.isFinite)).toBe(true);
    const sums = impls.map(({ make }) => {
      const rs = make(h.length);
      rs.add(randomUpdates(1, h.length, 9)[0]!, 0.5);
      rs.addEncoded(u, 3.25);
      rs.addEncoded(u, -1);
      return rs;
    });
    const ref = createRunningSum(h.length);
    ref.add(randomUpdates(1, h.length, 9)[0]!, 0.5);
    ref.add(decoded, 3.25);
    ref.add(decoded, -1);
    for (const rs of sums) {
      expectSameBits(rs.sum(), ref.sum());
      expect(rs.totalWeight).toBe(2.75);
      expect(rs.count).toBe(3);
    }
  });

  for (const length of [0, 1, 5, 255, 257, SLICE + 5, 3 * SLICE + 7]) {
    it(`int8 (${length} values): wasm and js bit-identical, as add() of q·scale rounded to float32`, () => {
      const u = int8Update(length, 40 + length);
      const ref = createRunningSum(length);
      ref.add(decodeRange(u as EncodedView, 0, length), 7);
      for (const { make } of impls) {
        const rs = make(length);
        rs.addEncoded(u, 7);
        expectSameBits(rs.sum(), ref.sum());
      }
    });
  }

  it('refuses an update of another length and a non-finite weight', () => {
    for (const { make } of impls) {
      const rs = make(10);
      expect(() => rs.addEncoded({ encoding: 'float16', length: 9, data: new Uint16Array(9) }, 1)).toThrow(/9 values, the sum has 10/);
      expect(() => rs.addEncoded({ encoding: 'float16', length: 10, data: new Uint16Array(10) }, Number.NaN)).toThrow(/finite/);
      expect(rs.count).toBe(0);
    }
  });
});

describe('staging slots (request bodies read into the sum’s memory)', () => {
  it('lends disjoint slots, folds updates decoded from them in place with the same bits as the copy path, and takes them back', () => {
    const n = 70_000;
    const inPlace = createRunningSum(n, { wasm: accumulateWasm });
    const copied = createRunningSum(n, { wasm: accumulateWasm });
    const next = rng(9);
    const messages = [0, 1, 2].map(() => encodeTensors([{ name: 'u', shape: [n], data: Float32Array.from({ length: n }, () => next() - 0.5) }]));
    const slots = messages.map((m) => inPlace.stagingSlot(m.length)!);
    const spans = slots.map((s) => [s.bytes.byteOffset, s.bytes.byteOffset + s.bytes.length] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    for (const [i, m] of messages.entries()) {
      slots[i]!.bytes.set(m);
      inPlace.add(decodeTensors(slots[i]!.bytes).tensors[0]!.data, i + 1);
      copied.add(decodeTensors(m).tensors[0]!.data, i + 1);
    }
    expect(inPlace.inPlaceAdds).toBe(3);
    expect(copied.inPlaceAdds).toBe(0);
    expect(Buffer.from(inPlace.sum().buffer, inPlace.sum().byteOffset, n * 8).equals(Buffer.from(copied.sum().buffer, copied.sum().byteOffset, n * 8))).toBe(
      true,
    );
    // staging() could grow the memory under lent slots: refused until they are back.
    expect(() => inPlace.staging(16)).toThrow(/slots are lent out/);
    for (const s of slots) s.release();
    expect(inPlace.staging(16).length).toBe(16);
  });

  it('answers null when the pool has no room, and lends the space again once released', () => {
    const sum = createRunningSum(1000, { wasm: accumulateWasm });
    const big = sum.stagingSlot(10 * 1024 * 1024)!;
    expect(sum.stagingSlot(10 * 1024 * 1024)).toBeNull();
    expect(sum.stagingSlot(64 * 1024 * 1024)).toBeNull();
    const small = sum.stagingSlot(1024 * 1024)!;
    expect(small.bytes.byteOffset).toBeGreaterThanOrEqual(big.bytes.byteOffset + big.bytes.length);
    big.release();
    expect(sum.stagingSlot(10 * 1024 * 1024)).not.toBeNull();
    expect(createRunningSum(1000).stagingSlot(100)).toBeNull(); // js: no benefit, the caller reads into its own buffer
  });
});
