/**
 * @module A saved tfjs model on disk (what `model.save('file://dir')` or `downloads://` wrote: a
 * `model.json` and the weight files its manifest names) as `tf.io.ModelArtifacts`, and a
 * downloaded version written back to disk.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CliError, EXIT } from './output.ts';

/** Reads `path` (a model.json, or a folder holding one) and the weight files it names, in manifest order. */
export async function readModelFiles(path: string): Promise<tf.io.ModelArtifacts> {
  let file = resolve(path);
  if ((await stat(file).catch(() => null))?.isDirectory()) file = join(file, 'model.json');
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new CliError('invalid_model_file', `${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, EXIT.refused);
  });
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(text) as tf.io.ModelJSON;
  } catch (e) {
    throw new CliError('invalid_model_file', `${file}: not JSON (${(e as Error).message})`, EXIT.refused);
  }
  if (typeof json !== 'object' || json === null || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new CliError('invalid_model_file', `${file}: not a tfjs model.json (needs modelTopology and weightsManifest)`, EXIT.refused);
  }
  const dir = dirname(file);
  return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (const group of manifest) {
      specs.push(...group.weights);
      for (const p of group.paths) {
        const bytes = await readFile(join(dir, p)).catch((e: NodeJS.ErrnoException) => {
          throw new CliError('invalid_model_file', `${join(dir, p)} (named by ${file}): ${e.code === 'ENOENT' ? 'no such file' : e.message}`, EXIT.refused);
        });
        buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      }
    }
    return [specs, tf.io.concatenateArrayBuffers(buffers)];
  });
}
