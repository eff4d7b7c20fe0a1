import { describe, expect, it } from 'vitest';
import { compileWat } from './compile-wat.ts';
import { accumulateWasm, readKernelWasm, readKernelWat } from './wasm-node.ts';

describe('accumulate.wasm', () => {
  it('is exactly what wabt compiles from accumulate.wat today (run `npm run build:wasm` if this fails)', async () => {
    const compiled = await compileWat(readKernelWat());
    const committed = readKernelWasm();
    expect(committed.length).toBe(compiled.length);
    expect(committed.findIndex((b, i) => b !== compiled[i])).toBe(-1);
  });

  it('imports only its memory and exports the kernels running-sum.ts and modular-sum.ts call', () => {
    expect(WebAssembly.Module.imports(accumulateWasm)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    const names = WebAssembly.Module.exports(accumulateWasm)
      .map((e) => e.name)
      .sort();
    expect(names).toEqual(['acc1', 'acc2', 'acc3', 'acc4', 'acc_f16', 'acc_i8', 'finalize', 'first_non_finite', 'madd', 'msub']);
  });

  it('kernels on raw memory: acc4 keeps the sequential order, finalize demotes like Math.fround', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const k = new WebAssembly.Instance(accumulateWasm, { env: { memory } }).exports as Record<string, (...a: number[]) => number>;
    const f64 = new Float64Array(memory.buffer);
    const f32 = new Float32Array(memory.buffer);
    // sum at byte 0 (5 doubles), updates at bytes 64, 96, 128, 160 (5 floats each)
    const us = [
      [2 ** 60, 1, 2, 3, 4],
      [1, 1, 1, 1, 1],
      [-(2 ** 60), 0, 0, 0, 0],
      [1, 2, 3, 4, 5],
    ];
    us.forEach((u, j) => {
      f32.set(u, (64 + 32 * j) / 4);
    });
    k.acc4!(0, 64, 96, 128, 160, 5, 1, 1, 1, 1);
    // sequential: ((2^60 + 1) - 2^60) + 1: 2^60 + 1 rounds to 2^60, so 0 + 1 = 1 (reassociating would give 2)
    const expected = [0, 1, 2, 3, 4].map((i) => {
      let s = 0;
      for (const u of us) s = s + 1 * Math.fround(u[i]!);
      return s;
    });
    expect(Array.from(f64.subarray(0, 5))).toEqual(expected);
    expect(f64[0]).toBe(1);
    // finalize into bytes 192.. from base at 64: out = f32(base + s * invW)
    k.finalize!(192, 64, 0, 5, 1 / 3);
    expect(Array.from(f32.subarray(48, 53))).toEqual([0, 1, 2, 3, 4].map((i) => Math.fround(Math.fround(us[0]![i]!) + expected[i]! * (1 / 3))));
    expect(k.first_non_finite!(64, 20)).toBe(-1);
  });
});
