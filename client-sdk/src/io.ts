/**
 * @module TensorFlow.js model I/O for fedge: a load handler for any published version
 * (`tf.loadLayersModel(handler)`), and what a saved model (`model.save` artifacts: a `model.json`
 * and its weights) becomes when a task is created from it.
 */
import * as tf from '@tensorflow/tfjs';
import { FedgeError } from './errors.ts';
import type { TrainingPlan } from './protocol/messages.ts';
import type { WireTensor } from './protocol/safetensors.ts';

/** Fetches a path of the fedge API with the caller's credentials, retries and typed errors. */
export type ApiGet = (path: string) => Promise<Response>;

/**
 * A `tf.io.IOHandler` that loads a published version as a TensorFlow.js Layers model (topology,
 * weights, and the task's training config, so the model comes back compiled).
 *
 * @example
 * const model = await tf.loadLayersModel(client.modelHandler(3));
 */
export function versionLoadHandler(get: ApiGet, taskId: string, version: number | 'current'): tf.io.IOHandler {
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      const base = `/tasks/${encodeURIComponent(taskId)}/models/${version}`;
      const json = (await (await get(`${base}/model.json`)).json()) as tf.io.ModelJSON;
      const manifest = json.weightsManifest[0];
      if (manifest?.paths.length !== 1) throw new FedgeError('invalid_response', 'a fedge model.json names one weights file');
      // Relative to the model.json: `weights.bin`, or `../V/weights.bin` for `current`.
      const weightsPath = new URL(manifest.paths[0]!, `https://fedge.invalid${base}/model.json`).pathname;
      const weightData = await (await get(weightsPath)).arrayBuffer();
      const artifacts: tf.io.ModelArtifacts = { modelTopology: json.modelTopology, weightSpecs: manifest.weights, weightData };
      if (json.format) artifacts.format = json.format;
      if (json.generatedBy) artifacts.generatedBy = json.generatedBy;
      if (json.trainingConfig) artifacts.trainingConfig = json.trainingConfig;
      if (json.userDefinedMetadata) artifacts.userDefinedMetadata = json.userDefinedMetadata;
      return artifacts;
    },
  };
}

/** What task creation needs from a saved model: its topology, its weights in order, and the plan its training config implies. */
export interface SavedModel {
  modelTopology: Record<string, unknown>;
  tensors: WireTensor[];
  /** From the model's training config (loss, optimizer, learning rate), where it records one. */
  plan: Partial<TrainingPlan>;
}

const LOSSES: readonly TrainingPlan['loss'][] = ['categoricalCrossentropy', 'sparseCategoricalCrossentropy', 'binaryCrossentropy', 'meanSquaredError'];

/**
 * Reads `model.save` artifacts (what `tf.io.browserFiles`, `tf.io.http` or a file read returns) as
 * a task's model. tfjs records the training config only when saving with `{ includeOptimizer: true }`
 * (the optimizer's own state that it appends is skipped). Refuses, with `unsupported_model` and a message saying what, a GraphModel
 * (inference-only, from the converter), quantized or non-float32 weights, and a training config
 * fedge cannot honour (several outputs, a loss or optimizer it does not train with).
 */
export function readSavedModel(artifacts: tf.io.ModelArtifacts): SavedModel {
  const topology = artifacts.modelTopology as Record<string, unknown> | ArrayBuffer | undefined;
  if (artifacts.format === 'graph-model' || (topology && !(topology instanceof ArrayBuffer) && 'node' in topology))
    throw new FedgeError('unsupported_model', 'a GraphModel (tfjs-converter output) cannot be trained: save a Layers model (tf.LayersModel.save) instead');
  if (!topology || topology instanceof ArrayBuffer || typeof topology !== 'object')
    throw new FedgeError('unsupported_model', 'the saved model has no Layers topology (model.json "modelTopology")');
  const specs = artifacts.weightSpecs ?? [];
  if (!artifacts.weightData || specs.length === 0) throw new FedgeError('unsupported_model', 'the saved model has no weights (weightsManifest and its files)');
  const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
  const tensors: WireTensor[] = [];
  let offset = 0;
  for (const spec of specs) {
    // `model.save(h, { includeOptimizer: true })` appends the optimizer's state: not a model weight.
    if (spec.group === 'optimizer') {
      offset += spec.shape.reduce((a, b) => a * b, 1) * bytesPer(spec.dtype);
      continue;
    }
    if (spec.quantization) throw new FedgeError('unsupported_model', `weight "${spec.name}" is quantized: save the model unquantized (float32)`);
    if (spec.dtype !== 'float32') throw new FedgeError('unsupported_model', `weight "${spec.name}" is ${spec.dtype}: fedge trains float32 weights`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    if (offset + count * 4 > data.byteLength) throw new FedgeError('unsupported_model', `the weights file ends before weight "${spec.name}"`);
    tensors.push({ name: spec.name, shape: [...spec.shape], data: new Float32Array(data.slice(offset, offset + count * 4)) });
    offset += count * 4;
  }
  if (offset !== data.byteLength) throw new FedgeError('unsupported_model', `the weights file holds ${data.byteLength} bytes, the manifest ${offset}`);
  return { modelTopology: topology, tensors, plan: artifacts.trainingConfig ? planOf(artifacts.trainingConfig) : {} };
}

/** The training plan a tfjs/Keras training config implies (its metrics need no setting: the SDK reports loss and accuracy). */
function planOf(config: tf.io.TrainingConfig): Partial<TrainingPlan> {
  if (config.weighted_metrics || config.loss_weights || config.sample_weight_mode)
    throw new FedgeError('unsupported_model', 'the training config uses weighted metrics, loss weights or sample weights, which fedge does not support');
  if (typeof config.loss !== 'string') throw new FedgeError('unsupported_model', 'the model has several outputs with their own losses: fedge trains one loss');
  const loss = camel(config.loss) as TrainingPlan['loss'];
  if (!LOSSES.includes(loss)) throw new FedgeError('unsupported_model', `loss "${config.loss}" is not one fedge trains with (${LOSSES.join(', ')})`);
  const optimizer = config.optimizer_config as { class_name?: string; config?: Record<string, unknown> } | undefined;
  const plan: Partial<TrainingPlan> = { loss };
  if (!optimizer?.class_name) return plan;
  const name = optimizer.class_name.toLowerCase();
  if (name !== 'sgd' && name !== 'adam')
    throw new FedgeError('unsupported_model', `optimizer "${optimizer.class_name}" is not one fedge trains with (SGD, Adam)`);
  plan.optimizer = name;
  const lr = optimizer.config?.learning_rate ?? optimizer.config?.learningRate ?? optimizer.config?.lr;
  if (typeof lr === 'number' && lr > 0) plan.learningRate = lr;
  return plan;
}

function bytesPer(dtype: string): number {
  return dtype === 'bool' ? 1 : 4;
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}
