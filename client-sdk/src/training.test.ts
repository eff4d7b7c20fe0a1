import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ModelMismatchError } from './errors.ts';
import { buildModel, flatWeights } from './training.ts';

/** dense 2→2 then batch norm: tfjs orders model.weights trainable first, so bn's moving statistics come last. */
function topology() {
  const model = tf.sequential({ layers: [tf.layers.dense({ name: 'd', units: 2, inputShape: [2] }), tf.layers.batchNormalization({ name: 'bn' })] });
  const json = model.toJSON(undefined, false) as unknown as Record<string, unknown>;
  const order = model.weights.map((w) => w.originalName);
  model.dispose();
  return { json, order };
}

describe('model weights are matched to the task by name', () => {
  it('sets and reads a task whose tensor order is not model.weights order', async () => {
    const { json, order } = topology();
    expect(order).toEqual(['d/kernel', 'd/bias', 'bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance']);
    // The operator listed the tensors layer by layer, moving statistics beside gamma and beta.
    const tensors = ['bn/moving_variance', 'd/kernel', 'bn/gamma', 'd/bias', 'bn/moving_mean', 'bn/beta'].map((name) => ({
      name,
      shape: name === 'd/kernel' ? [2, 2] : [2],
      dtype: 'float32' as const,
    }));
    const flat = Float32Array.from({ length: 14 }, (_, i) => i + 1);
    const model = await buildModel(json, tensors, flat);
    try {
      // Each model weight holds its own tensor's values, wherever the task listed it.
      const byName = Object.fromEntries(model.weights.map((w) => [w.originalName, Array.from(w.read().dataSync())]));
      expect(byName).toEqual({
        'bn/moving_variance': [1, 2],
        'd/kernel': [3, 4, 5, 6],
        'bn/gamma': [7, 8],
        'd/bias': [9, 10],
        'bn/moving_mean': [11, 12],
        'bn/beta': [13, 14],
      });
      // And the flat vector comes back in the task's order, so Δ lines up with the server's layout.
      expect(Array.from(flatWeights(model))).toEqual(Array.from(flat));
    } finally {
      model.dispose();
    }
  });

  it('refuses a task tensor the model does not have, or one of another shape', async () => {
    const { json } = topology();
    const base = ['d/kernel', 'd/bias', 'bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance'].map((name) => ({
      name,
      shape: name === 'd/kernel' ? [2, 2] : [2],
      dtype: 'float32' as const,
    }));
    const renamed = base.map((t) => (t.name === 'd/bias' ? { ...t, name: 'd/offset' } : t));
    await expect(buildModel(json, renamed, new Float32Array(14))).rejects.toThrow(ModelMismatchError);
    await expect(buildModel(json, renamed, new Float32Array(14))).rejects.toThrow(/no weight "d\/offset"/);
    const reshaped = base.map((t) => (t.name === 'd/kernel' ? { ...t, shape: [4, 1] } : t));
    await expect(buildModel(json, reshaped, new Float32Array(14))).rejects.toThrow(/"d\/kernel" has shape \[2,2\] in the model, \[4,1\] in the task/);
    expect(tf.memory().numTensors).toBe(0);
  });
});
