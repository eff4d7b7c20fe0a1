/**
 * @module The models of the simulations, with seeded initializers so a run is reproducible:
 * `mlp` 784-64-10, `2nn` 784-200-200-10 (McMahan et al. 2017), and a small CNN.
 */
import * as tf from '@tensorflow/tfjs';

export type ModelName = 'mlp' | '2nn' | 'cnn';
export const MODEL_NAMES: readonly ModelName[] = ['mlp', '2nn', 'cnn'];

/** Whether the model takes images as [28, 28, 1] (CNN) or as flat 784-vectors. */
export function inputShape(name: ModelName): number[] {
  return name === 'cnn' ? [28, 28, 1] : [784];
}

export function buildSimModel(name: ModelName, seed: number): tf.LayersModel {
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const dense = (units: number, activation: 'relu' | 'softmax', layerName: string, inputShape?: number[]) =>
    tf.layers.dense({ name: layerName, units, activation, kernelInitializer: init(), ...(inputShape ? { inputShape } : {}) });
  if (name === 'mlp') return tf.sequential({ name: 'mlp', layers: [dense(64, 'relu', 'hidden', [784]), dense(10, 'softmax', 'logits')] });
  if (name === '2nn')
    return tf.sequential({ name: 'twoNN', layers: [dense(200, 'relu', 'hidden1', [784]), dense(200, 'relu', 'hidden2'), dense(10, 'softmax', 'logits')] });
  return tf.sequential({
    name: 'cnn',
    layers: [
      tf.layers.conv2d({ name: 'conv1', inputShape: [28, 28, 1], filters: 16, kernelSize: 5, activation: 'relu', kernelInitializer: init() }),
      tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }),
      tf.layers.conv2d({ name: 'conv2', filters: 32, kernelSize: 5, activation: 'relu', kernelInitializer: init() }),
      tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      dense(64, 'relu', 'hidden'),
      dense(10, 'softmax', 'logits'),
    ],
  });
}
