/**
 * TensorFlow.js model I/O against the real aggregator (wrangler dev): tasks created from what
 * `model.save` wrote (in memory, and as model.json + weights.bin served over HTTP), with the
 * model's training config honoured; a task as a save target; versions loaded with a tfjs IO
 * handler. What fedge cannot train is refused with `unsupported_model`, a mismatching model.json
 * with the server's `weights_mismatch`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { useWasmBackend } from '../../test/sim/tf-backend.ts';
import { FedgeAdmin, FedgeClient, FedgeError, ValidationError } from './index.ts';

const url = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: url, token: inject('fedgeAdminToken') });

function compiledModel(optimizer: tf.Optimizer = tf.train.adam(0.003)): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

/** What `model.save` writes, captured in memory. */
async function saved(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: true }, // tfjs records the training config only then
  );
  return artifacts!;
}

async function predictions(model: tf.LayersModel): Promise<Float32Array> {
  const x = tf.tensor2d(
    Array.from({ length: 20 }, (_, i) => Math.cos(i)),
    [5, 4],
  );
  const y = model.predict(x) as tf.Tensor;
  const out = (await y.data()) as Float32Array;
  tf.dispose([x, y]);
  return out;
}

beforeAll(() => useWasmBackend());

describe('tasks from saved models', () => {
  it("creates a task from model.save's artifacts, with the model's training config as the plan", async () => {
    const model = compiledModel();
    const task = await admin.createTask(await saved(model), { name: 'from artifacts' });
    expect((await admin.getTask(task.id)).plan).toMatchObject({ optimizer: 'adam', learningRate: 0.003, loss: 'categoricalCrossentropy' });
    // Version 0 is the saved weights.
    const { token } = await admin.registerClient(task.id);
    const client = new FedgeClient({ baseUrl: url, taskId: task.id, token });
    const v0 = await client.downloadModel(0);
    expect(Buffer.from((await predictions(v0)).buffer).equals(Buffer.from((await predictions(model)).buffer))).toBe(true);
    // An explicit plan wins over the training config, field by field.
    const other = await admin.createTask(await saved(model), { name: 'plan wins', plan: { learningRate: 0.5 } });
    expect((await admin.getTask(other.id)).plan).toMatchObject({ optimizer: 'adam', learningRate: 0.5 });
    model.dispose();
    v0.dispose();
  });

  it('creates a task from model.json + weights.bin files, loaded through a tfjs IO handler (tf.io.http)', async () => {
    const model = compiledModel(tf.train.sgd(0.02));
    const artifacts = await saved(model);
    const dir = mkdtempSync(join(tmpdir(), 'fedge-saved-'));
    const json: tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology!,
      format: artifacts.format!,
      generatedBy: artifacts.generatedBy!,
      convertedBy: artifacts.convertedBy ?? null,
      trainingConfig: artifacts.trainingConfig!,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs! }],
    };
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'weights.bin'), Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData!)));
    const server = createServer((req, res) => res.end(readFileSync(join(dir, req.url!.slice(1)))));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const task = await admin.createTask(tf.io.http(`http://127.0.0.1:${port}/model.json`), { name: 'from files' });
      expect((await admin.getTask(task.id)).plan).toMatchObject({ optimizer: 'sgd', learningRate: 0.02 });
      expect((await admin.getManifest(task.id, 0)).tensors.map((t) => t.name)).toEqual(['hidden/kernel', 'hidden/bias', 'out/kernel', 'out/bias']);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
      model.dispose();
    }
  });

  it('is a save target: model.save(admin.createTaskHandler(options)) creates the task', async () => {
    const model = compiledModel();
    const handler = admin.createTaskHandler({ name: 'saved into fedge' });
    const result = await model.save(handler, { includeOptimizer: true });
    // The 67 weights, and the optimizer state tfjs appends (Adam before any step: its iteration count).
    expect(result.modelArtifactsInfo.weightDataBytes).toBe((4 * 8 + 8 + 8 * 3 + 3) * 4 + 4);
    expect(handler.task).toMatchObject({ name: 'saved into fedge', currentVersion: 0 });
    expect((await admin.getTask(handler.task!.id)).plan).toMatchObject({ optimizer: 'adam', learningRate: 0.003 });
    model.dispose();
  });

  it('refuses what it cannot train (unsupported_model) and a model.json whose weights do not match (weights_mismatch)', async () => {
    const graph = await admin.createTask({ format: 'graph-model', modelTopology: { node: [] } }, { name: 'graph' }).catch((e: unknown) => e);
    expect(graph).toBeInstanceOf(FedgeError);
    expect(graph).toMatchObject({ code: 'unsupported_model', message: expect.stringMatching(/GraphModel/) });

    const model = compiledModel(tf.train.rmsprop(0.01));
    await expect(admin.createTask(await saved(model), { name: 'rmsprop' })).rejects.toMatchObject({
      code: 'unsupported_model',
      message: expect.stringMatching(/optimizer "RMSProp" is not one fedge trains with/),
    });
    const artifacts = await saved(compiledModel());
    const truncated = {
      ...artifacts,
      weightSpecs: artifacts.weightSpecs!.slice(0, 3),
      weightData: tf.io.CompositeArrayBuffer.join(artifacts.weightData!).slice(0, (32 + 8 + 24) * 4),
    };
    const mismatch = await admin.createTask(truncated, { name: 'mismatch' }).catch((e: unknown) => e);
    expect(mismatch).toBeInstanceOf(ValidationError);
    expect(mismatch).toMatchObject({ status: 400, code: 'weights_mismatch' });
    model.dispose();
  });
});

describe('versions as tfjs models through the SDK', () => {
  it('tf.loadLayersModel(client.modelHandler(v)) equals downloadModel(v), compiled with the training config', async () => {
    const model = compiledModel();
    const task = await admin.createTask(model, { name: 'handler', plan: { optimizer: 'adam', learningRate: 0.01 } });
    model.dispose();
    const { token } = await admin.registerClient(task.id);
    const client = new FedgeClient({ baseUrl: url, taskId: task.id, token });
    for (const v of [0, 'current'] as const) {
      const loaded = await tf.loadLayersModel(client.modelHandler(v));
      const sdk = await client.downloadModel(v);
      expect(Buffer.from((await predictions(loaded)).buffer).equals(Buffer.from((await predictions(sdk)).buffer))).toBe(true);
      expect(loaded.optimizer.getClassName()).toBe('Adam');
      loaded.dispose();
      sdk.dispose();
    }
  });
});
