/**
 * Node example: a client that takes part in a few rounds of a fedge task.
 *
 * With `npm start` running (from the repository root):
 *
 *   FEDGE_ADMIN_TOKEN=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars) npx node client-sdk/examples/node.ts
 *
 * creates a task (a 4-8-3 classifier, one client per round), registers a client, and runs
 * FEDGE_ROUNDS (default 3) participations on this process's own synthetic data, printing each
 * acknowledgement and the version it produced. To join an existing task instead, give
 * FEDGE_TASK_ID and FEDGE_CLIENT_TOKEN (no admin token needed). FEDGE_URL defaults to
 * http://127.0.0.1:8787. Ctrl-C cancels cleanly.
 *
 * `npx node` is the repository's Node 22, which runs TypeScript directly.
 */

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { APIError, FedgeAdmin, FedgeClient, type ModelManifest } from '../src/index.ts';

const url = process.env.FEDGE_URL ?? 'http://127.0.0.1:8787';
const rounds = Number(process.env.FEDGE_ROUNDS ?? 3);

// TensorFlow.js backend for Node: WebAssembly (its .wasm files ship in the npm package). The
// default `cpu` backend works too, only slower; `@tensorflow/tfjs-node` is the native option.
const require = createRequire(import.meta.url);
setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`);
await tf.setBackend('wasm');

/** The model a task is created with: its topology and initial weights become version 0. */
function makeModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
}

/** This client's private data: n examples of 4 features, class = argmax of the first three. */
function localData(n: number): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const raw = Float32Array.from({ length: n * 4 }, () => Math.random());
  const labels = Array.from({ length: n }, (_, i) => [0, 1, 2].reduce((best, k) => (raw[i * 4 + k]! > raw[i * 4 + best]! ? k : best), 0));
  return tf.tidy(() => ({ xs: tf.tensor2d(raw, [n, 4]), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3) as tf.Tensor2D }));
}

function accuracy(model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor): number {
  return tf.tidy(() => (model.predict(xs) as tf.Tensor).argMax(-1).equal(ys.argMax(-1)).mean().dataSync()[0]!);
}

/** A task and a client token: the given ones, or a new task made with the admin token. */
async function credentials(): Promise<{ taskId: string; token: string }> {
  if (process.env.FEDGE_TASK_ID && process.env.FEDGE_CLIENT_TOKEN) return { taskId: process.env.FEDGE_TASK_ID, token: process.env.FEDGE_CLIENT_TOKEN };
  const adminToken = process.env.FEDGE_ADMIN_TOKEN;
  if (!adminToken) {
    console.error('Set FEDGE_ADMIN_TOKEN (to create a task; `npm start` keeps it in .dev.vars), or FEDGE_TASK_ID and FEDGE_CLIENT_TOKEN (to join one).');
    process.exit(2);
  }
  const admin = new FedgeAdmin({ baseUrl: url, token: adminToken });
  const model = makeModel();
  const task = await admin.createTask(model, {
    name: 'node example',
    rounds: { clientsPerRound: 1, deadlineSeconds: 120 },
    plan: { epochs: 5, batchSize: 16, learningRate: 0.1, optimizer: 'sgd', loss: 'categoricalCrossentropy' },
  });
  model.dispose();
  const client = await admin.registerClient(task.id, 'node example');
  console.log(`created task ${task.id} (${task.numParams} parameters) and registered client ${client.clientId}`);
  const browser = await admin.registerClient(task.id, 'browser example');
  console.log(
    `the browser example can join as another client: http://127.0.0.1:8000/browser.html?server=${encodeURIComponent(url)}&task=${task.id}&token=${encodeURIComponent(browser.token)}`,
  );
  return { taskId: task.id, token: client.token };
}

const { taskId, token } = await credentials();
const controller = new AbortController();
process.once('SIGINT', () => controller.abort(new Error('interrupted')));
const { signal } = controller;

let sent = 0;
let received = 0;
const client = new FedgeClient({
  baseUrl: url,
  taskId,
  token,
  maxRetries: 3,
  logger: { warn: (message) => console.warn(message) },
  onTraffic: (s, r) => {
    sent += s;
    received += r;
  },
});

const train = localData(300); // stays in this process
const heldOut = localData(200); // for a local look at how the global model does

try {
  const before = await client.downloadModel('current', { signal });
  console.log(`global model before: accuracy ${(accuracy(before, heldOut.xs, heldOut.ys) * 100).toFixed(1)}% on local held-out data`);
  before.dispose();

  for (let i = 1; i <= rounds; i++) {
    const result = await client.participate(train, {
      signal,
      onStep: (step, detail) => {
        if (step === 'waiting') console.log(`  waiting ${detail?.seconds} s (${detail?.reason})`);
        if (step === 'training') console.log(`  round ${detail?.round}: training locally`);
      },
      onEpochEnd: ({ epoch, epochs, logs }) => console.log(`    epoch ${epoch + 1}/${epochs} loss ${logs.loss?.toFixed(4)}`),
    });
    if (result.status !== 'accepted') {
      console.log(
        `  round ${result.assignment.round} ${result.status === 'late' ? 'closed first' : 'was abandoned at its deadline (too few clients)'}; trying the next one`,
      );
      continue;
    }
    const { ack } = result;
    console.log(`  accepted: round ${ack.round}, seq ${ack.seq}, ${ack.numExamples} examples, local ${JSON.stringify(result.train.metrics)}`);
    // The round closes when enough clients sent theirs (or at its deadline); then the next version appears.
    const published = await waitForVersionAfter(result.assignment.baseVersion, Date.parse(result.assignment.deadlineAt) + 30_000);
    if (published)
      console.log(
        `  version ${published.version} published from round ${published.round}: ${published.participants} client(s), ${published.numExamples} examples`,
      );
    else console.log(`  round ${ack.round} has not closed yet (it waits for more clients)`);
  }

  const after = await client.downloadModel('current', { signal });
  console.log(`global model after: accuracy ${(accuracy(after, heldOut.xs, heldOut.ys) * 100).toFixed(1)}% on local held-out data`);
  after.dispose();
  console.log(`bytes sent ${sent}, received ${received}`);
} catch (e) {
  if (signal.aborted) console.error('cancelled');
  else if (e instanceof APIError)
    console.error(`${e.name}: ${e.message}`); // e.g. "PermissionDeniedError: 403 forbidden: invalid token"
  else console.error(e);
  process.exitCode = 1;
} finally {
  tf.dispose([train.xs, train.ys, heldOut.xs, heldOut.ys]);
  console.log(`tensors left in memory: ${tf.memory().numTensors}`);
}

/** The task's latest manifest once a version after `base` exists, or null if none by `until` (epoch ms). */
async function waitForVersionAfter(base: number, until: number): Promise<ModelManifest | null> {
  for (;;) {
    const m = await client.getManifest('current', { signal });
    if (m.version > base) return m;
    if (Date.now() > until) return null;
    await new Promise((r) => setTimeout(r, 250));
  }
}
