/**
 * @module A saved {@link argmaxModel} on disk, for the tests of what reads saved models (the
 * `fedge` CLI, `npm run simulate --model PATH`). Node only: synthetic.ts itself is bundled into
 * browser test pages.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { argmaxModel } from './synthetic.ts';

/**
 * Saves a compiled {@link argmaxModel} (SGD 0.2, categorical cross-entropy, accuracy) to `dir` as
 * `model.save('file://dir', { includeOptimizer: true })` writes it with tfjs-node: model.json and
 * weights.bin. Returns its parameter count.
 */
export async function saveArgmaxModel(dir: string): Promise<number> {
  const model = argmaxModel();
  model.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const manifest = [{ paths: ['weights.bin'], weights: a.weightSpecs ?? [] }];
      writeFileSync(
        join(dir, 'model.json'),
        JSON.stringify({
          modelTopology: a.modelTopology,
          weightsManifest: manifest,
          format: a.format,
          generatedBy: a.generatedBy,
          trainingConfig: a.trainingConfig,
        }),
      );
      writeFileSync(join(dir, 'weights.bin'), new Uint8Array(a.weightData as ArrayBuffer));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: true },
  );
  const params = model.countParams();
  model.dispose();
  return params;
}
