/**
 * @module Build-time only (Node): compiles accumulate.wat to the bytes of accumulate.wasm with the
 * npm package `wabt`. Shared by aggregator/scripts/build-wasm.mjs and the drift test, so both use the same
 * feature flags and writer options. Never imported by Worker code.
 */
import wabtInit from 'wabt';

/** WebAssembly features the kernels need (fixed-width SIMD only; no relaxed SIMD: it is not deterministic). */
export const WAT_FEATURES = { simd: true } as const;

/** Compiles WAT source text to a validated wasm binary (no debug names, so the bytes are stable). */
export async function compileWat(source: string, filename = 'accumulate.wat'): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat(filename, source, WAT_FEATURES);
  try {
    mod.resolveNames();
    mod.validate();
    const { buffer } = mod.toBinary({ log: false, write_debug_names: false, canonicalize_lebs: true });
    return new Uint8Array(buffer);
  } finally {
    mod.destroy();
  }
}
