/**
 * Published versions load the TensorFlow.js way: `tf.loadLayersModel` over HTTP from the real
 * aggregator (wrangler dev), with the client's token in `requestInit`, gives the model the SDK's
 * `downloadModel()` gives (same predictions, bit for bit), compiled with the task's training config.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FedgeAdmin, FedgeClient } from '../../client-sdk/src/index.ts';
import { argmaxData, argmaxTask } from '../sim/synthetic.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';

const url = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: url, token: inject('fedgeAdminToken') });

let taskId: string;
let token: string;
let client: FedgeClient;

const newTask = () => argmaxTask(admin, 'tfjs models', { plan: { epochs: 1, batchSize: 8, learningRate: 0.05, optimizer: 'adam' } });

beforeAll(async () => {
  await useWasmBackend();
  taskId = await newTask();
  ({ token } = await admin.registerClient(taskId, 'tfjs'));
  client = new FedgeClient({ baseUrl: url, taskId, token });
  const { xs, ys } = argmaxData(32, 3);
  const result = await client.participate({ xs, ys });
  tf.dispose([xs, ys]);
  expect(result.status).toBe('accepted');
  for (let i = 0; i < 100 && (await client.getManifest('current')).version < 1; i++) await new Promise((r) => setTimeout(r, 50));
}, 60_000);

const auth = () => ({ requestInit: { headers: { authorization: `Bearer ${token}` } } });
const modelUrl = (v: number | 'current') => `${url}/v1/tasks/${taskId}/models/${v}/model.json`;

async function predictions(model: tf.LayersModel): Promise<Float32Array> {
  const x = tf.tensor2d(
    Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7)),
    [10, 4],
  );
  const y = model.predict(x) as tf.Tensor;
  const out = (await y.data()) as Float32Array;
  tf.dispose([x, y]);
  return out;
}

describe('model versions as TensorFlow.js models', () => {
  it('tf.loadLayersModel over HTTP equals downloadModel(): same predictions, bit for bit', async () => {
    for (const v of [0, 1]) {
      const loaded = await tf.loadLayersModel(modelUrl(v), auth());
      const sdk = await client.downloadModel(v);
      const [a, b] = [await predictions(loaded), await predictions(sdk)];
      expect(a.length).toBe(30);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `version ${v}`).toBe(true);
      loaded.dispose();
      sdk.dispose();
    }
    // Version 1 is not version 0: the round moved the weights.
    const [m0, m1] = [await tf.loadLayersModel(modelUrl(0), auth()), await tf.loadLayersModel(modelUrl(1), auth())];
    expect(Buffer.from((await predictions(m0)).buffer).equals(Buffer.from((await predictions(m1)).buffer))).toBe(false);
    m0.dispose();
    m1.dispose();
  });

  it("is compiled with the task's training config (loss, accuracy, optimizer and learning rate)", async () => {
    const loaded = await tf.loadLayersModel(modelUrl(1), auth());
    expect(loaded.loss).toBe('categoricalCrossentropy');
    expect(loaded.metricsNames).toEqual(['loss', 'acc']);
    expect(loaded.optimizer.getClassName()).toBe('Adam');
    expect(loaded.optimizer.getConfig()).toMatchObject({ learningRate: 0.05, beta1: 0.9, beta2: 0.999 });
    const json = await (await fetch(modelUrl(1), { headers: { authorization: `Bearer ${token}` } })).json();
    expect(json).toMatchObject({
      format: 'layers-model',
      trainingConfig: {
        loss: 'categoricalCrossentropy',
        metrics: ['accuracy'],
        optimizer_config: { class_name: 'Adam', config: { learning_rate: 0.05, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 } },
      },
      weightsManifest: [
        {
          paths: ['weights.bin'],
          weights: [{ name: 'hidden/kernel', shape: [4, 8], dtype: 'float32' }, { name: 'hidden/bias' }, { name: 'out/kernel' }, { name: 'out/bias' }],
        },
      ],
      userDefinedMetadata: { fedge: { taskId, version: 1 } },
    });
    loaded.dispose();
  });

  it('serves current/model.json pointing at the current version, revalidated, and the versioned files immutable', async () => {
    const headers = { authorization: `Bearer ${token}` };
    const current = await fetch(modelUrl('current'), { headers });
    expect(current.headers.get('cache-control')).toBe('no-cache');
    const manifest = await client.getManifest('current');
    expect((await current.json()).weightsManifest[0].paths).toEqual([`../${manifest.version}/weights.bin`]);
    const viaCurrent = await tf.loadLayersModel(modelUrl('current'), auth());
    const direct = await tf.loadLayersModel(modelUrl(manifest.version), auth());
    expect(Buffer.from((await predictions(viaCurrent)).buffer).equals(Buffer.from((await predictions(direct)).buffer))).toBe(true);
    viaCurrent.dispose();
    direct.dispose();

    const bin = await fetch(`${url}/v1/tasks/${taskId}/models/1/weights.bin`, { headers });
    expect(bin.status).toBe(200);
    expect(bin.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = bin.headers.get('etag')!;
    expect(etag).toBe(`"${(await client.getManifest(1)).contentHash}.bin"`);
    // The same float32 values as the safetensors blob, in the task's tensor order.
    expect(Buffer.from(await bin.arrayBuffer()).equals(Buffer.from((await client.getWeights(1)).flat.buffer))).toBe(true);
    expect((await fetch(`${url}/v1/tasks/${taskId}/models/1/weights.bin`, { headers: { ...headers, 'if-none-match': etag } })).status).toBe(304);
    const json = await fetch(modelUrl(1), { headers });
    expect(json.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(modelUrl(1), { headers: { ...headers, 'if-none-match': json.headers.get('etag')! } })).status).toBe(304);
  });

  it('refuses what the weights refuse: no token, another task, no such version', async () => {
    expect((await fetch(modelUrl(1))).status).toBe(401);
    const other = await admin.registerClient(await newTask(), 'of another task');
    const forbidden = await fetch(modelUrl(1), { headers: { authorization: `Bearer ${other.token}` } });
    expect(forbidden.status).toBe(403);
    expect((await forbidden.json()).error.code).toBe('forbidden');
    const missing = await fetch(modelUrl(99), { headers: { authorization: `Bearer ${token}` } });
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('version_not_found');
    await expect(tf.loadLayersModel(modelUrl(99), auth())).rejects.toThrow(/404/);
  });
});
