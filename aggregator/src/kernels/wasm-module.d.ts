// The CompiledWasm import of the kernels (wasm-worker.ts). worker-configuration.d.ts declares
// `*.wasm` for the Worker build; this narrower pattern also covers tsconfig.node.json, which
// type-checks this folder without the Worker typings.
declare module '*/accumulate.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
