import { describe, expect, it } from 'vitest';
import { addMask } from '#protocol/secagg/prg.ts';
import { ModularSum } from './modular-sum.ts';
import { accumulateWasm } from './wasm-node.ts';

/** Deterministic words over the whole uint32 range (xorshift32), so sums wrap around 2³². */
function words(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 0;
  }
  return out;
}

describe('ModularSum', () => {
  // Lengths around the 8-word vector step and the 16,384-word staging slice, and a 100k model.
  for (const n of [0, 1, 7, 8, 9, 16_383, 16_384, 16_385, 100_001]) {
    it(`wasm and js give prg.addMask's words for ${n} words, adding and subtracting mod 2³²`, () => {
      const vs = [words(n, 1), words(n, 2), words(n, 3)];
      const expected = new Uint32Array(n);
      addMask(expected, vs[0]!, 1);
      addMask(expected, vs[1]!, 1);
      addMask(expected, vs[2]!, -1);
      for (const wasm of [accumulateWasm, null]) {
        const sum = new ModularSum(n, wasm);
        expect(sum.implementation).toBe(wasm ? 'wasm' : 'js');
        sum.add(vs[0]!);
        sum.add(vs[1]!, 1);
        sum.add(vs[2]!, -1);
        expect(sum.words).toEqual(expected);
        sum.dispose();
        expect(sum.words.length).toBe(0);
      }
    });
  }

  it('adds a chunk at an offset, wrapping (0xffffffff + 2 = 1), and leaves the other words alone', () => {
    for (const wasm of [accumulateWasm, null]) {
      const sum = new ModularSum(20, wasm);
      sum.add(Uint32Array.from({ length: 20 }, () => 0xffffffff));
      sum.add(
        Uint32Array.from({ length: 10 }, () => 2),
        1,
        5,
      );
      expect(Array.from(sum.words)).toEqual([...Array(5).fill(0xffffffff), ...Array(10).fill(1), ...Array(5).fill(0xffffffff)]);
      sum.add(Uint32Array.of(2), -1, 19);
      expect(sum.words[19]).toBe(0xfffffffd);
    }
  });

  it('refuses a vector that does not fit, and a module without the kernels', () => {
    const sum = new ModularSum(4, accumulateWasm);
    expect(() => sum.add(new Uint32Array(3), 1, 2)).toThrow(/3 words at offset 2 do not fit a sum of 4/);
    expect(() => sum.add(new Uint32Array(1), 1, -1)).toThrow(RangeError);
    expect(Array.from(sum.words)).toEqual([0, 0, 0, 0]);
    const empty = new WebAssembly.Module(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
    expect(() => new ModularSum(4, empty)).toThrow(/no madd\/msub kernels/);
  });
});
