/**
 * The React Native build of the app, as Metro would bundle it (the packages' `browser` fields
 * honoured), run by the test in a context holding React Native's globals only.
 *
 * tfjs needs a platform there: a React Native app gets one from @tensorflow/tfjs-react-native
 * (`import '@tensorflow/tfjs-react-native'` then `await tf.ready()`); this stand-in registers the
 * same few functions, so the test needs no native module.
 */
import * as tf from '@tensorflow/tfjs';
import { runRound } from './app.js';

tf.setPlatform('react-native', {
  fetch: (path: string, init?: RequestInit) => fetch(path, init),
  now: () => Date.now(),
  encode: (text: string) => new TextEncoder().encode(text),
  decode: () => {
    throw new Error('decode is not used by a training round');
  },
  isTypedArray: (a: unknown): a is Float32Array | Int32Array | Uint8Array | Uint8ClampedArray =>
    a instanceof Float32Array || a instanceof Int32Array || a instanceof Uint8Array || a instanceof Uint8ClampedArray,
  setTimeoutCustom: (fn: () => void, delay: number) => {
    setTimeout(fn, delay);
  },
} as unknown as Parameters<typeof tf.setPlatform>[1]);

(globalThis as unknown as { fedgeApp: unknown }).fedgeApp = { runRound };
