/**
 * @module The compiled kernels for the Worker bundle (workerd only).
 *
 * Workers cannot compile wasm bytes at runtime; wrangler's CompiledWasm rule (wrangler.jsonc)
 * turns this import into a `WebAssembly.Module` when bundling. Pass it to
 * `createRunningSum(n, { wasm: accumulateWasm })`. Node code (tests, benchmarks) uses wasm-node.ts.
 */
import accumulate from './accumulate.wasm';

export const accumulateWasm: WebAssembly.Module = accumulate;
/** Alias of {@link accumulateWasm}. */
export const kernelModule: WebAssembly.Module = accumulate;
