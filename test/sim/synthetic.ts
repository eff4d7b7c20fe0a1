/**
 * @module A small seeded classification problem for SDK tests and examples: 4 features in [0, 1),
 * 3 classes, the class being the argmax of the first three features.
 */
import * as tf from '@tensorflow/tfjs';
import type { PrivacyOptions } from '../../client-sdk/src/admin-types.ts';
import { rng } from '../shared/random.ts';

export function argmaxData(n: number, seed: number): { xs: tf.Tensor2D; ys: tf.Tensor2D; raw: Float32Array } {
  const next = rng(seed);
  const raw = Float32Array.from({ length: n * 4 }, next);
  const labels = Array.from({ length: n }, (_, i) => [0, 1, 2].reduce((best, k) => (raw[i * 4 + k]! > raw[i * 4 + best]! ? k : best), 0));
  return tf.tidy(() => ({ xs: tf.tensor2d(raw, [n, 4]), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3) as tf.Tensor2D, raw }));
}

/** Weights of {@link argmaxModel}: 4·8 + 8 + 8·3 + 3. */
export const ARGMAX_MODEL_PARAMS = 67;

/**
 * The tests' model for this problem: 4 → 8 (relu, `hidden`) → 3 (softmax, `out`); its weights are
 * `hidden/kernel`, `hidden/bias`, `out/kernel`, `out/bias`. The caller disposes it.
 */
export function argmaxModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
}

/** Creates a task of {@link argmaxModel} (one client per round unless `options.rounds` says otherwise); its id. */
export async function argmaxTask(
  admin: { createTask(model: tf.LayersModel, options: { name: string; rounds?: object; plan?: object; privacy?: PrivacyOptions }): Promise<{ id: string }> },
  name: string,
  options: { rounds?: object; plan?: object; privacy?: PrivacyOptions } = {},
): Promise<string> {
  const model = argmaxModel();
  try {
    return (
      await admin.createTask(model, {
        name,
        rounds: { clientsPerRound: 1, overSelection: 1, deadlineSeconds: 120, ...options.rounds },
        ...(options.plan ? { plan: options.plan } : {}),
        ...(options.privacy ? { privacy: options.privacy } : {}),
      })
    ).id;
  } finally {
    model.dispose();
  }
}
