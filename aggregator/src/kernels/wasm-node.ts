/**
 * @module The compiled kernels for Node (tests, benchmarks, scripts). Never bundled into the Worker:
 * it reads accumulate.wasm from disk and compiles it synchronously at import.
 *
 * node:fs is reached through `process.getBuiltinModule` (Node >= 22.3) with a local declaration,
 * so this file also type-checks under the Worker tsconfig, which has no Node typings.
 */
declare const process: {
  getBuiltinModule(id: 'node:fs'): { readFileSync(path: URL): Uint8Array; readFileSync(path: URL, encoding: 'utf8'): string };
};

const fs = process.getBuiltinModule('node:fs');
const here = (import.meta as { url: string }).url;

/** Location of the committed binary (beside this file). */
export const kernelWasmUrl: URL = new URL('./accumulate.wasm', here);
/** Location of its WAT source. */
export const kernelWatUrl: URL = new URL('./accumulate.wat', here);

/** The committed accumulate.wasm bytes. */
export function readKernelWasm(): Uint8Array {
  return new Uint8Array(fs.readFileSync(kernelWasmUrl));
}

/** The accumulate.wat source text. */
export function readKernelWat(): string {
  return fs.readFileSync(kernelWatUrl, 'utf8');
}

/** `new WebAssembly.Module(bytes)`; the Workers typings declare Module abstract, Node's do not. */
const ModuleCtor = WebAssembly.Module as unknown as new (bytes: Uint8Array) => WebAssembly.Module;

/** The compiled kernels, same role as wasm-worker.ts's export. */
export const accumulateWasm: WebAssembly.Module = new ModuleCtor(readKernelWasm());
/** Alias of {@link accumulateWasm}. */
export const kernelModule: WebAssembly.Module = accumulateWasm;
