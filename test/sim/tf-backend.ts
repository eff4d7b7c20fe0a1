/**
 * @module Selects TensorFlow.js's WebAssembly backend in Node (about 5× the cpu backend here;
 * `@tensorflow/tfjs-node` needs a native download these machines cannot make). Its .wasm files
 * ship inside the npm package, so nothing is fetched at run time.
 */

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

let ready: Promise<string> | null = null;

/** Sets the wasm backend once per process; resolves to the backend's name. */
export function useWasmBackend(): Promise<string> {
  ready ??= (async () => {
    const require = createRequire(import.meta.url);
    setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`);
    await tf.setBackend('wasm');
    await tf.ready();
    return tf.getBackend();
  })();
  return ready;
}
