/**
 * @module The user's own model and data for `npm run simulate -- --model ./model.json --data ./data.mjs`:
 * the saved tfjs model (what `model.save` wrote) and a data module that gives each virtual client
 * its examples.
 *
 * The data module (JavaScript or TypeScript, run by Node) exports, as `default` or as `load`, a
 * function of `{ clients, seed }` (the `--clients` asked for, or undefined, and `--seed`) that
 * returns, or resolves to, `{ clients: [{ xs, ys }, …], test?: { xs, ys } }`: one entry per
 * virtual client, and an optional held-out set the published versions are evaluated on. Each `xs`
 * / `ys` is a `tf.Tensor`, a nested array of numbers (`[[0.1, 0.2], …]`), or `{ data, shape }`
 * with `data` a `Float32Array` or number array; the first dimension counts examples. Each training
 * thread loads the module too, so it must give the same data for the same `{ clients, seed }`.
 *
 * ```js
 * // data.mjs: 20 clients, each with 50 examples of 4 features and 3 one-hot classes
 * export default function load({ seed }) {
 *   const example = () => { const x = [Math.random(), Math.random(), Math.random(), Math.random()];
 *     const c = x.slice(0, 3).indexOf(Math.max(...x.slice(0, 3))); return [x, [0, 1, 2].map((k) => (k === c ? 1 : 0))]; };
 *   const set = (n) => { const rows = Array.from({ length: n }, example); return { xs: rows.map((r) => r[0]), ys: rows.map((r) => r[1]) }; };
 *   return { clients: Array.from({ length: 20 }, () => set(50)), test: set(500) };
 * }
 * ```
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useWasmBackend } from './tf-backend.ts';

/** An array of examples in any of the accepted forms. */
export type ArrayInput = tf.Tensor | number[] | number[][] | number[][][] | number[][][][] | { data: Float32Array | number[]; shape: number[] };
export interface UserData {
  clients: { xs: tf.Tensor; ys: tf.Tensor; n: number }[];
  test?: { xs: tf.Tensor; ys: tf.Tensor };
}

function tensorOf(input: unknown, where: string): tf.Tensor {
  if (input && typeof input === 'object' && 'dataSync' in input && 'shape' in input) {
    // A tensor of this tfjs, or of another copy the module imported: rebuilt here either way.
    const t = input as tf.Tensor;
    return tf.tensor(t.dataSync() as Float32Array, t.shape, 'float32');
  }
  if (input && typeof input === 'object' && 'data' in input && 'shape' in input) {
    const { data, shape } = input as { data: ArrayLike<number>; shape: number[] };
    return tf.tensor(Float32Array.from(data), shape, 'float32');
  }
  if (Array.isArray(input)) {
    try {
      return tf.tensor(input as number[], undefined, 'float32');
    } catch (e) {
      throw new Error(`${where}: not a rectangular array of numbers (${(e as Error).message})`);
    }
  }
  throw new Error(`${where}: expected a tf.Tensor, a nested array of numbers, or { data, shape }`);
}

function pairOf(value: unknown, where: string): { xs: tf.Tensor; ys: tf.Tensor; n: number } {
  if (!value || typeof value !== 'object' || !('xs' in value) || !('ys' in value)) throw new Error(`${where}: expected { xs, ys }`);
  const xs = tensorOf((value as { xs: unknown }).xs, `${where}.xs`);
  const ys = tensorOf((value as { ys: unknown }).ys, `${where}.ys`);
  const n = xs.shape[0] ?? 0;
  if (xs.rank < 2 || ys.rank < 2 || n < 1 || ys.shape[0] !== n) {
    tf.dispose([xs, ys]);
    throw new Error(`${where}: xs and ys need at least 2 dimensions and the same number of examples ≥ 1 (got [${xs.shape}] and [${ys.shape}])`);
  }
  return { xs, ys, n };
}

/** Imports the data module at `path` and returns each client's tensors (the caller disposes them). */
export async function loadUserData(path: string, options: { clients: number | undefined; seed: number }): Promise<UserData> {
  await useWasmBackend(); // the tensors are made here, on the backend the clients train with
  const url = pathToFileURL(resolve(path)).href;
  let mod: { default?: unknown; load?: unknown };
  try {
    mod = (await import(url)) as typeof mod;
  } catch (e) {
    throw new Error(`--data ${path}: cannot import it (${(e as Error).message})`);
  }
  const load = typeof mod.default === 'function' ? mod.default : mod.load;
  if (typeof load !== 'function') throw new Error(`--data ${path}: export a function as default or as "load" (see test/sim/user-data.ts)`);
  const out = (await load({ clients: options.clients, seed: options.seed })) as { clients?: unknown; test?: unknown } | undefined;
  if (!out || !Array.isArray(out.clients) || out.clients.length === 0)
    throw new Error(`--data ${path}: load() must return { clients: [{ xs, ys }, …] } with at least one client`);
  const clients: UserData['clients'] = [];
  try {
    for (const [k, c] of out.clients.entries()) clients.push(pairOf(c, `--data ${path}: clients[${k}]`));
    const test = out.test === undefined ? undefined : pairOf(out.test, `--data ${path}: test`);
    return test ? { clients, test: { xs: test.xs, ys: test.ys } } : { clients };
  } catch (e) {
    for (const c of clients) tf.dispose([c.xs, c.ys]);
    throw e;
  }
}
