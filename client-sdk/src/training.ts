/**
 * @module Local training with TensorFlow.js: build the task's model, train it on the app's data,
 * and compute the update Δ = trained − base. Every tensor made here is disposed before returning.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelMismatchError } from './errors.ts';
import type { TensorManifestEntry, TrainingPlan } from './protocol/messages.ts';
import { elementCount } from './protocol/safetensors.ts';

/**
 * Training data the app passes in: tensors, or a `tf.data.Dataset` of `{ xs, ys }` batches or examples.
 *
 * @example
 * await client.participate({ xs, ys }); // xs: [n, ...features], ys: [n, ...labels]
 * const ds = tf.data.zip({ xs: tf.data.array(tf.unstack(xs)), ys: tf.data.array(tf.unstack(ys)) }).batch(32);
 * await client.participate(ds); // a batched dataset, iterated once more to count its examples
 */
export type TrainingData = { xs: tf.Tensor; ys: tf.Tensor } | tf.data.Dataset<tf.TensorContainer>;

/**
 * What `onEpochEnd` receives after each local epoch (`epoch` counts from 0).
 *
 * @example
 * await client.participate({ xs, ys }, { onEpochEnd: ({ epoch, epochs, logs }) => console.log(`epoch ${epoch + 1}/${epochs}: loss ${logs.loss}`) });
 */
export interface TrainingProgress {
  epoch: number;
  epochs: number;
  /** Logs of the epoch that just ended (loss, and acc when the loss is a classification loss). */
  logs: Record<string, number>;
}

/**
 * Progress callbacks of local training (`trainLocally`, and options of `participate()`). Both may
 * be async: training waits for them.
 *
 * @example
 * await trainLocally(model, flat, { xs, ys }, assignment.plan, {
 *   onBatchEnd: () => tf.nextFrame(), // keep the page responsive
 *   onEpochEnd: ({ epoch, epochs }) => progressBar.set((epoch + 1) / epochs),
 * });
 */
export interface TrainingCallbacks {
  onEpochEnd?: (progress: TrainingProgress) => void | Promise<void>;
  onBatchEnd?: (batch: number, logs: Record<string, number>) => void | Promise<void>;
}

/**
 * What `trainLocally` resolves to: Δ, the example count and the final-epoch local metrics, ready
 * for `submitUpdate()`.
 *
 * @example
 * const { delta, numExamples, metrics } = await trainLocally(model, flat, { xs, ys }, assignment.plan);
 * await client.submitUpdate({ round: assignment.round, baseVersion: assignment.baseVersion, delta, numExamples, metrics });
 */
export interface TrainResult {
  /** Δ = trained − base, the model's weights concatenated in order. */
  delta: Float32Array;
  numExamples: number;
  /** Final-epoch local metrics: `loss`, and `accuracy` for classification losses. */
  metrics: Record<string, number>;
}

/**
 * Builds the task's model from its topology and sets the given weights (matched by name).
 * The caller owns the returned model and must `dispose()` it.
 *
 * @example
 * const task = await client.getTaskModel();
 * const { manifest, flat } = await client.getWeights(assignment.baseVersion);
 * const model = await buildModel(task.modelTopology, manifest.tensors, flat);
 */
export async function buildModel(modelTopology: Record<string, unknown>, tensors: readonly TensorManifestEntry[], flat: Float32Array): Promise<tf.LayersModel> {
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({ modelTopology } as unknown as tf.io.ModelJSON);
  } catch (e) {
    throw new ModelMismatchError(`the task's topology cannot be built as a tfjs Layers model: ${(e as Error).message}`, { cause: e });
  }
  try {
    setFlatWeights(model, tensors, flat);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The weights of each model set by {@link setFlatWeights}, in the task's tensor order. */
const taskOrder = new WeakMap<tf.LayersModel, tf.LayerVariable[]>();

/**
 * Sets a flat vector (the task's tensors end to end) as the model's weights. Tensors are matched
 * to the model's weights by name (`<layer>/<weight>`, tfjs's `originalName`), as the aggregator
 * checked them at task creation, so the task's tensor order need not be `model.weights` order.
 *
 * @example
 * const { manifest, flat } = await client.getWeights((await client.getManifest('current')).version);
 * setFlatWeights(myModel, manifest.tensors, flat); // myModel: the app's own build of the task's architecture
 */
export function setFlatWeights(model: tf.LayersModel, tensors: readonly TensorManifestEntry[], flat: Float32Array): void {
  const byName = new Map(model.weights.map((w) => [w.originalName, w]));
  if (byName.size !== model.weights.length) throw new ModelMismatchError('the model has two weights with one name');
  if (model.weights.length !== tensors.length) {
    throw new ModelMismatchError(`the model has ${model.weights.length} weight tensors, the task ${tensors.length}`);
  }
  let pos = 0;
  const ordered: tf.LayerVariable[] = [];
  const values = new Map<string, tf.Tensor>();
  try {
    for (const spec of tensors) {
      const w = byName.get(spec.name);
      if (!w) throw new ModelMismatchError(`the model has no weight "${spec.name}"`);
      if (w.shape.length !== spec.shape.length || w.shape.some((d, j) => d !== spec.shape[j])) {
        throw new ModelMismatchError(`weight "${spec.name}" has shape [${w.shape.join(',')}] in the model, [${spec.shape.join(',')}] in the task`);
      }
      const n = elementCount(spec.shape);
      if (pos + n > flat.length) throw new ModelMismatchError(`the weights hold ${flat.length} values, the task's tensors more`);
      values.set(spec.name, tf.tensor(flat.subarray(pos, pos + n), spec.shape, 'float32'));
      ordered.push(w);
      pos += n;
    }
    if (pos !== flat.length) throw new ModelMismatchError(`the weights hold ${flat.length} values, the model ${pos}`);
    model.setWeights(model.weights.map((w) => values.get(w.originalName)!));
    taskOrder.set(model, ordered);
  } finally {
    tf.dispose([...values.values()]);
  }
}

/**
 * The model's current weights concatenated in the task's order (or `model.weights` order for a
 * model not built by the SDK), as one new Float32Array.
 *
 * @example
 * const base = flatWeights(model);
 * await myOwnTraining(model);
 * const delta = flatWeights(model).map((w, i) => w - base[i]!);
 */
export function flatWeights(model: tf.LayersModel): Float32Array {
  const values = (taskOrder.get(model) ?? model.weights).map((w) => w.read().dataSync() as Float32Array);
  const out = new Float32Array(values.reduce((a, v) => a + v.length, 0));
  let pos = 0;
  for (const v of values) {
    out.set(v, pos);
    pos += v.length;
  }
  return out;
}

function optimizerFor(plan: TrainingPlan): tf.Optimizer {
  return plan.optimizer === 'adam' ? tf.train.adam(plan.learningRate) : tf.train.sgd(plan.learningRate);
}

/**
 * Trains `model` in place with the task's plan and returns Δ = trained − base together with the
 * example count and final local metrics. `base` is the flat vector the model started from.
 *
 * @example
 * const model = await buildModel(task.modelTopology, manifest.tensors, flat);
 * const { delta, numExamples, metrics } = await trainLocally(model, flat, { xs, ys }, assignment.plan, { onEpochEnd: console.log });
 * model.dispose();
 */
export async function trainLocally(
  model: tf.LayersModel,
  base: Float32Array,
  data: TrainingData,
  plan: TrainingPlan,
  callbacks: TrainingCallbacks = {},
): Promise<TrainResult> {
  const optimizer = optimizerFor(plan);
  const classification = plan.loss !== 'meanSquaredError';
  model.compile({ optimizer, loss: plan.loss, metrics: classification ? ['accuracy'] : [] });
  let numExamples = 0;
  const fitCallbacks: tf.CustomCallbackArgs = {
    onEpochEnd: async (epoch, logs) => {
      await callbacks.onEpochEnd?.({ epoch, epochs: plan.epochs, logs: { ...(logs as Record<string, number>) } });
    },
    onBatchEnd: async (batch, logs) => {
      await callbacks.onBatchEnd?.(batch, { ...(logs as Record<string, number>) });
    },
  };
  let history: tf.History;
  try {
    if ((plan.proximalMu ?? 0) > 0) {
      const r = await trainProximal(model, data, plan, optimizer, callbacks);
      numExamples = r.numExamples;
      history = r.history;
    } else if (isDataset(data)) {
      numExamples = await countExamples(data);
      history = await model.fitDataset(data, { epochs: plan.epochs, callbacks: fitCallbacks, verbose: 0 });
    } else {
      numExamples = data.xs.shape[0] ?? 0;
      history = await model.fit(data.xs, data.ys, { epochs: plan.epochs, batchSize: plan.batchSize, shuffle: true, callbacks: fitCallbacks, verbose: 0 });
    }
  } finally {
    optimizer.dispose();
  }
  const trained = flatWeights(model);
  if (trained.length !== base.length) throw new ModelMismatchError(`trained weights hold ${trained.length} values, the base ${base.length}`);
  const delta = new Float32Array(trained.length);
  for (let i = 0; i < delta.length; i++) delta[i] = trained[i]! - base[i]!;
  return { delta, numExamples, metrics: finalMetrics(history) };
}

/**
 * FedProx's local solver (Li et al. 2020): mini-batch steps on loss(w) + μ/2·‖w − w_global‖²,
 * with w_global the weights training started from. `model.fit` cannot add a term that depends on
 * fixed reference weights, so this loop computes the loss itself.
 */
async function trainProximal(
  model: tf.LayersModel,
  data: TrainingData,
  plan: TrainingPlan,
  optimizer: tf.Optimizer,
  callbacks: TrainingCallbacks,
): Promise<{ numExamples: number; history: tf.History }> {
  const mu = plan.proximalMu;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const anchor = vars.map((v) => v.clone());
  const lossOf = lossFunction(plan.loss);
  const classification = plan.loss !== 'meanSquaredError';
  const history: Record<string, number[]> = { loss: [], ...(classification ? { acc: [] } : {}) };
  let numExamples = 0;
  try {
    for (let epoch = 0; epoch < plan.epochs; epoch++) {
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let batch = 0;
      for await (const { xs, ys } of batches(data, plan.batchSize)) {
        const n = xs.shape[0] ?? 0;
        const out = optimizer.minimize(
          () => {
            const pred = model.apply(xs, { training: true }) as tf.Tensor;
            const dataLoss = lossOf(ys, pred);
            const prox = tf.addN(vars.map((v, i) => tf.sum(tf.square(tf.sub(v, anchor[i]!)))));
            if (classification) correct += tf.sum(tf.cast(correctPredictions(pred, ys, plan.loss), 'float32')).dataSync()[0]!;
            lossSum += dataLoss.dataSync()[0]! * n;
            return tf.add(dataLoss, tf.mul(mu / 2, prox)) as tf.Scalar;
          },
          false,
          vars,
        );
        tf.dispose([xs, ys, out ?? []]);
        seen += n;
        await callbacks.onBatchEnd?.(batch++, { size: n });
      }
      if (epoch === 0) numExamples = seen;
      const logs: Record<string, number> = { loss: lossSum / Math.max(1, seen), ...(classification ? { acc: correct / Math.max(1, seen) } : {}) };
      history.loss!.push(logs.loss!);
      if (classification) history.acc!.push(logs.acc!);
      await callbacks.onEpochEnd?.({ epoch, epochs: plan.epochs, logs });
    }
  } finally {
    tf.dispose(anchor);
  }
  return { numExamples, history: { history } as unknown as tf.History };
}

function lossFunction(name: TrainingPlan['loss']): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar {
  const perExample: Record<TrainingPlan['loss'], (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
    categoricalCrossentropy: tf.metrics.categoricalCrossentropy,
    sparseCategoricalCrossentropy: (labels, probs) =>
      tf.metrics.categoricalCrossentropy(tf.oneHot(tf.cast(tf.reshape(labels, [-1]), 'int32'), probs.shape[probs.shape.length - 1]!), probs),
    binaryCrossentropy: tf.metrics.binaryCrossentropy,
    meanSquaredError: tf.metrics.meanSquaredError,
  };
  const f = perExample[name];
  return (yTrue, yPred) => tf.mean(f(yTrue, yPred)) as tf.Scalar;
}

function correctPredictions(pred: tf.Tensor, ys: tf.Tensor, loss: TrainingPlan['loss']): tf.Tensor {
  if (loss === 'binaryCrossentropy') return tf.equal(tf.round(pred), ys);
  const labels = loss === 'sparseCategoricalCrossentropy' ? tf.cast(tf.reshape(ys, [-1]), 'int32') : tf.argMax(ys, -1);
  return tf.equal(tf.argMax(pred, -1), labels);
}

/** Shuffled mini-batches of tensor data, or the batches of a (batched) dataset; the caller disposes each. */
async function* batches(data: TrainingData, batchSize: number): AsyncGenerator<{ xs: tf.Tensor; ys: tf.Tensor }> {
  if (isDataset(data)) {
    const it = await data.iterator();
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as { xs: tf.Tensor; ys: tf.Tensor };
    return;
  }
  const n = data.xs.shape[0] ?? 0;
  const order = tf.util.createShuffledIndices(n);
  for (let start = 0; start < n; start += batchSize) {
    const idx = tf.tensor1d(Array.from(order.subarray(start, Math.min(n, start + batchSize))), 'int32');
    const batch = { xs: tf.gather(data.xs, idx), ys: tf.gather(data.ys, idx) };
    idx.dispose();
    yield batch;
  }
}

/**
 * Evaluates `model` on local data with the task's loss: `{ loss, accuracy }` (accuracy for
 * classification losses) and the example count. Disposes every tensor it makes.
 *
 * @example
 * const model = await client.downloadModel('current');
 * const { numExamples, metrics } = await evaluateLocally(model, { xs: testXs, ys: testYs }, (await client.getTaskModel()).plan);
 * model.dispose();
 */
export async function evaluateLocally(
  model: tf.LayersModel,
  data: { xs: tf.Tensor; ys: tf.Tensor },
  plan: Pick<TrainingPlan, 'loss'>,
): Promise<{ numExamples: number; metrics: Record<string, number> }> {
  const lossOf = lossFunction(plan.loss);
  const classification = plan.loss !== 'meanSquaredError';
  const [loss, correct] = tf.tidy(() => {
    const pred = model.predict(data.xs) as tf.Tensor;
    return [lossOf(data.ys, pred), classification ? tf.sum(tf.cast(correctPredictions(pred, data.ys, plan.loss), 'float32')) : tf.scalar(0)];
  });
  const n = data.xs.shape[0] ?? 0;
  const metrics: Record<string, number> = { loss: (await loss.data())[0]! };
  if (classification) metrics.accuracy = (await correct.data())[0]! / Math.max(1, n);
  tf.dispose([loss, correct]);
  return { numExamples: n, metrics };
}

function finalMetrics(history: tf.History): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, values] of Object.entries(history.history)) {
    const last = values[values.length - 1];
    const v = typeof last === 'number' ? last : undefined;
    if (v !== undefined && Number.isFinite(v)) out[key === 'acc' ? 'accuracy' : key] = v;
  }
  return out;
}

function isDataset(data: TrainingData): data is tf.data.Dataset<tf.TensorContainer> {
  return typeof (data as tf.data.Dataset<tf.TensorContainer>).iterator === 'function';
}

/** Examples in one pass over a dataset of `{ xs, ys }` batches (counts the leading dimension). */
async function countExamples(ds: tf.data.Dataset<tf.TensorContainer>): Promise<number> {
  let n = 0;
  await ds.forEachAsync((el) => {
    const xs = (el as { xs?: tf.Tensor }).xs;
    n += xs ? (xs.shape[0] ?? 1) : 1;
    tf.dispose(el);
  });
  return n;
}
