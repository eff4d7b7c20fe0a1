/**
 * @module Regenerates the walk-through's example files: `npx node aggregator/examples/make-examples.ts`.
 *
 * tiny-task.json: a task for a 4→3 softmax classifier (15 parameters), one client per round.
 * tiny-update.safetensors: an update Δ for that task's round 1 (base version 0, 20 examples).
 */
import { writeFileSync } from 'node:fs';
import { UPDATE_META } from '#protocol/messages.ts';
import { encodeTensors } from '#protocol/safetensors.ts';

const dir = new URL('.', import.meta.url);
const kernel = Float32Array.from({ length: 12 }, (_, i) => ((i % 5) - 2) / 10);
const bias = new Float32Array(3);
const weights = encodeTensors([
  { name: 'dense/kernel', shape: [4, 3], data: kernel },
  { name: 'dense/bias', shape: [3], data: bias },
]);
const task = {
  name: 'walkthrough: 4-feature, 3-class softmax',
  modelTopology: {
    class_name: 'Sequential',
    config: {
      name: 'tiny',
      layers: [
        { class_name: 'Dense', config: { name: 'dense', units: 3, activation: 'softmax', use_bias: true, batch_input_shape: [null, 4], dtype: 'float32' } },
      ],
    },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  },
  initialWeights: Buffer.from(weights).toString('base64'),
  rounds: { clientsPerRound: 1, deadlineSeconds: 300, overSelection: 1 },
  plan: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
};
writeFileSync(new URL('tiny-task.json', dir), `${JSON.stringify(task, null, 2)}\n`);

const update = encodeTensors(
  [
    { name: 'dense/kernel', shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 0.05 : -0.025)) },
    { name: 'dense/bias', shape: [3], data: Float32Array.from([0.01, -0.02, 0.01]) },
  ],
  { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: '20', [UPDATE_META.metrics]: JSON.stringify({ loss: 0.93, accuracy: 0.55 }) },
);
writeFileSync(new URL('tiny-update.safetensors', dir), update);
console.log('wrote tiny-task.json and tiny-update.safetensors');
