/**
 * @module A small seeded classification problem for SDK tests and examples: 4 features in [0, 1),
 * 3 classes, the class being the argmax of the first three features.
 */
import * as tf from '@tensorflow/tfjs';
import { rng } from '../shared/random.ts';

export function argmaxData(n: number, seed: number): { xs: tf.Tensor2D; ys: tf.Tensor2D; raw: Float32Array } {
  const next = rng(seed);
  const raw = Float32Array.from({ length: n * 4 }, next);
  const labels = Array.from({ length: n }, (_, i) => [0, 1, 2].reduce((best, k) => (raw[i * 4 + k]! > raw[i * 4 + best]! ? k : best), 0));
  return tf.tidy(() => ({ xs: tf.tensor2d(raw, [n, 4]), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3) as tf.Tensor2D, raw }));
}
