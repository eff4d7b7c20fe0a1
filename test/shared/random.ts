/**
 * @module Seeded randomness for every test, simulation and benchmark: one generator, so a run is
 * reproducible from its seed alone (Math.random cannot be seeded).
 */

/**
 * Mulberry32: a small, fast 32-bit PRNG. Returns a function yielding uniform floats in [0, 1).
 * Seeds are reduced to 32 bits. Not for anything secret (the platform's own randomness comes from
 * `crypto.getRandomValues`).
 *
 * @example
 * const random = rng(7);
 * random(); // 0.6163... the same on every run
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
