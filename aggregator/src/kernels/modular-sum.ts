/**
 * @module Secure aggregation's sum: uint32 words added and subtracted modulo 2³² (the ring the
 * masked vectors live in), with accumulate.wasm's `madd`/`msub` SIMD kernels over a memory the sum
 * owns, or plain typed-array loops when no module is given. Integer arithmetic, so both are exact
 * and give the same words.
 *
 * Layout: the sum at byte 0, then one 64 KiB staging slot; a vector is copied into the slot a
 * slice at a time and added from there. The memory never grows, so `words` stays valid until
 * `dispose()`.
 *
 * Pure: imports nothing but sizes; the wasm module is injected as for running sums (wasm-worker.ts
 * in workerd, wasm-node.ts in Node).
 */
import { PAGE, SLICE } from './sum-base.ts';

interface ModularKernels {
  madd(s: number, p: number, n: number): void;
  msub(s: number, p: number, n: number): void;
}

/** A sum of uint32 vectors modulo 2³², `length` words, starting at zero. */
export class ModularSum {
  readonly implementation: 'wasm' | 'js';
  /** The sum (in the kernels' memory with wasm): read it before `dispose()`, copy it to keep it. */
  words: Uint32Array;
  private readonly k: ModularKernels | null;
  private readonly slot: number;
  private stage: Uint32Array;
  readonly length: number;

  constructor(length: number, wasm?: WebAssembly.Module | null) {
    this.length = length;
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
    if (!wasm) {
      this.implementation = 'js';
      this.k = null;
      this.slot = 0;
      this.words = new Uint32Array(length);
      this.stage = new Uint32Array(0);
      return;
    }
    this.implementation = 'wasm';
    this.slot = Math.ceil((length * 4) / 64) * 64;
    const bytes = this.slot + SLICE * 4;
    const pages = Math.max(1, Math.ceil(bytes / PAGE));
    if (pages > 65536) throw new RangeError(`${length} words exceed the 4 GiB wasm memory limit`);
    const memory = new WebAssembly.Memory({ initial: pages });
    const ex = new WebAssembly.Instance(wasm, { env: { memory } }).exports as Record<string, unknown>;
    if (typeof ex.madd !== 'function' || typeof ex.msub !== 'function') {
      throw new TypeError('the wasm module has no madd/msub kernels; rebuild accumulate.wasm with npm run build:wasm');
    }
    this.k = ex as unknown as ModularKernels;
    this.words = new Uint32Array(memory.buffer, 0, length);
    this.stage = new Uint32Array(memory.buffer, this.slot, SLICE);
  }

  /** words[offset + i] += sign · v[i] (mod 2³²) for every i of `v`, in place. */
  add(v: Uint32Array, sign: 1 | -1 = 1, offset = 0): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + v.length > this.length) {
      throw new RangeError(`${v.length} words at offset ${offset} do not fit a sum of ${this.length}`);
    }
    const k = this.k;
    if (!k) {
      const s = this.words;
      if (sign === 1) for (let i = 0; i < v.length; i++) s[offset + i] = (s[offset + i]! + v[i]!) >>> 0;
      else for (let i = 0; i < v.length; i++) s[offset + i] = (s[offset + i]! - v[i]!) >>> 0;
      return;
    }
    const kernel = sign === 1 ? k.madd : k.msub;
    for (let b = 0; b < v.length; b += SLICE) {
      const e = Math.min(b + SLICE, v.length);
      this.stage.set(v.subarray(b, e));
      kernel((offset + b) * 4, this.slot, e - b);
    }
  }

  /** Releases the memory (the sum reads as empty afterwards). */
  dispose(): void {
    this.words = new Uint32Array(0);
    this.stage = new Uint32Array(0);
  }
}
