#!/usr/bin/env node
// Compiles aggregator/src/kernels/accumulate.wat into accumulate.wasm (committed beside it).
//   npm run build:wasm            write accumulate.wasm
//   npm run build:wasm -- --check exit 1 if the committed accumulate.wasm differs from the source
// Needs Node >= 22.18 (imports the TypeScript compile helper through type stripping); use the
// repo's node devDependency (npm scripts and `npx node` pick it up).
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { compileWat } from '../src/kernels/compile-wat.ts';

const dir = new URL('../src/kernels/', import.meta.url);
const watUrl = new URL('accumulate.wat', dir);
const wasmUrl = new URL('accumulate.wasm', dir);

const bytes = await compileWat(await readFile(watUrl, 'utf8'));
// Validate with the engine too: compiling proves the SIMD opcodes are accepted by V8.
new WebAssembly.Module(bytes);

if (process.argv.includes('--check')) {
  let current = new Uint8Array(0);
  try {
    current = new Uint8Array(await readFile(wasmUrl));
  } catch {}
  const same = current.length === bytes.length && current.every((b, i) => b === bytes[i]);
  if (!same) {
    console.error(`${fileURLToPath(wasmUrl)} is stale: run npm run build:wasm`);
    process.exit(1);
  }
  console.log(`${fileURLToPath(wasmUrl)} matches accumulate.wat (${bytes.length} bytes)`);
} else {
  await writeFile(wasmUrl, bytes);
  console.log(`wrote ${fileURLToPath(wasmUrl)} (${bytes.length} bytes)`);
}
