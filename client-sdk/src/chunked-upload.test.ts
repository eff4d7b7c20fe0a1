/**
 * The SDK's chunked updates against the real aggregator (wrangler dev from test/node/global-setup.ts,
 * where models above 2M parameters are split into ranges of 1,376,256): real tfjs training of a
 * 2.1M-parameter model, then chunks, retries that lose answers, a submit resumed after a failure.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { useWasmBackend } from '../../test/sim/tf-backend.ts';
import { FedgeAdmin, FedgeClient } from './index.ts';
import { buildModel, trainLocally } from './training.ts';

const url = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: url, token: inject('fedgeAdminToken') });
const INPUTS = 1000;
const UNITS = 2100;
const P = INPUTS * UNITS + UNITS; // 2,102,100: two chunks of 1,376,256 and 725,844

function wideModel(): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ name: 'wide', units: UNITS, activation: 'softmax', inputShape: [INPUTS] })] });
}

function localData(seed: number, n = 16): { xs: tf.Tensor; ys: tf.Tensor } {
  return tf.tidy(() => {
    const xs = tf.randomUniform([n, INPUTS], 0, 1, 'float32', seed);
    const labels = tf.randomUniform([n], 0, UNITS, 'int32', seed + 1);
    return { xs, ys: tf.oneHot(labels, UNITS).toFloat() };
  });
}

async function largeTask(options: Record<string, unknown> = {}) {
  const model = wideModel();
  const task = await admin.createTask(model, {
    name: 'large model',
    rounds: { clientsPerRound: 2, overSelection: 1, deadlineSeconds: 300 },
    plan: { epochs: 1, batchSize: 8, learningRate: 0.1 },
    ...options,
  });
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  return { ...task, weights };
}

beforeAll(async () => {
  expect(await useWasmBackend()).toBe('wasm');
});

describe('chunked updates (a model split into parameter ranges)', { timeout: 300_000 }, () => {
  it('trains with tfjs, sends Δ in chunks, and the published version is the FedAvg of both clients', async () => {
    // The initial weights go in chunks too (POST /weight-uploads), and version 0 is the model's, exactly.
    const task = await largeTask({ weightsInChunks: true });
    expect(task).toMatchObject({ numParams: P, chunked: { chunkParams: 1_376_256, chunks: 2 } });
    const puts: string[] = [];
    const clients = await Promise.all(
      [0, 1].map(async () => {
        const creds = await admin.registerClient(task.id);
        return new FedgeClient({
          baseUrl: url,
          taskId: task.id,
          token: creds.token,
          fetch: (input, init) => {
            if (init?.method === 'PUT' || init?.method === 'POST') puts.push(new URL(String(input)).pathname.replace(/^.*\/rounds\/1\//, ''));
            return fetch(input, init);
          },
        });
      }),
    );
    const base = (await clients[0]!.getWeights(0)).flat;
    expect(base).toEqual(Float32Array.from([...task.weights[0]!, ...task.weights[1]!]));
    const deltas: { delta: Float32Array; n: number }[] = [];
    for (const [i, c] of clients.entries()) {
      const assignment = await c.waitForAssignment();
      expect(assignment).toMatchObject({ round: 1, baseVersion: 0, chunked: { chunkParams: 1_376_256, chunks: 2 } });
      const { flat, manifest } = await c.getWeights(0);
      const model = await buildModel((await c.getTaskModel()).modelTopology, manifest.tensors, flat);
      const data = localData(10 + i, 8 + 8 * i);
      const trained = await trainLocally(model, flat, data, assignment.plan);
      tf.dispose([data.xs, data.ys]);
      model.dispose();
      deltas.push({ delta: trained.delta, n: trained.numExamples });
      const ack = await c.submitUpdate({ round: 1, baseVersion: 0, delta: trained.delta, numExamples: trained.numExamples, metrics: trained.metrics });
      expect(ack).toMatchObject({ round: 1, seq: i + 1, numExamples: 8 + 8 * i });
    }
    expect(puts.filter((p) => p.startsWith('update/')).sort()).toEqual(
      ['update/chunks/0', 'update/chunks/0', 'update/chunks/1', 'update/chunks/1', 'update/commit', 'update/commit'].sort(),
    );
    let v1: Float32Array | null = null;
    for (let i = 0; i < 100 && !v1; i++) {
      if ((await admin.getTask(task.id)).currentVersion >= 1) v1 = (await clients[0]!.getWeights(1)).flat;
      else await new Promise((r) => setTimeout(r, 200));
    }
    const total = deltas.reduce((a, d) => a + d.n, 0);
    let worst = 0;
    for (let j = 0; j < P; j++) worst = Math.max(worst, Math.abs(v1![j]! - (base[j]! + deltas.reduce((a, d) => a + d.n * d.delta[j]!, 0) / total)));
    expect(worst).toBeLessThanOrEqual(1e-6);
    expect(deltas.every((d) => d.delta.some((x) => x !== 0))).toBe(true);
  });

  it('retries a chunk whose answer was lost (int8: the same bytes again, counted once) and resumes a failed submit with the missing chunks only', async () => {
    const task = await largeTask({ updateEncoding: 'int8', rounds: { clientsPerRound: 1, overSelection: 1, deadlineSeconds: 300 } });
    const creds = await admin.registerClient(task.id);
    const sent: { path: string; status: number | 'lost'; replayed?: boolean }[] = [];
    let mode: 'lose-chunk-1' | 'pass' = 'lose-chunk-1';
    const client = new FedgeClient({
      baseUrl: url,
      taskId: task.id,
      token: creds.token,
      maxRetries: 2,
      fetch: async (input, init) => {
        const path = new URL(String(input)).pathname.replace(/^.*\/rounds\/1\//, '');
        const res = await fetch(input, init);
        if (path.startsWith('update/')) {
          if (mode === 'lose-chunk-1' && path === 'update/chunks/1') {
            mode = 'pass';
            sent.push({ path, status: 'lost' });
            throw new TypeError('fetch failed: connection reset after the request was sent');
          }
          sent.push({ path, status: res.status, replayed: path.includes('chunks') ? (await res.clone().json()).replayed : undefined });
        }
        return res;
      },
    });
    const assignment = await client.waitForAssignment();
    expect(assignment).toMatchObject({ round: 1, updateEncoding: 'int8', chunked: { chunks: 2 } });
    const delta = Float32Array.from({ length: P }, (_, j) => Math.sin(j) * 0.01);
    // First call: chunk 1's answer is lost once, and its retry (same bytes) is taken as a replay.
    const args = { round: 1, baseVersion: 0, delta, numExamples: 7 };
    const ack = await client.submitUpdate(args);
    expect(ack).toMatchObject({ round: 1, seq: 1, numExamples: 7 });
    // Chunks go two at a time: the order between them is the network's, the commit comes last.
    const line = (s: (typeof sent)[number]) => `${s.path} ${s.status}${s.replayed ? ' replayed' : ''}`;
    expect(sent.filter((s) => s.path === 'update/chunks/1').map(line)).toEqual(['update/chunks/1 lost', 'update/chunks/1 200 replayed']);
    expect(sent.filter((s) => s.path === 'update/chunks/0').map(line)).toEqual(['update/chunks/0 200']);
    expect(line(sent.at(-1)!)).toBe('update/commit 200');
    const rounds = await admin.listRounds(task.id);
    expect(rounds.find((r) => r.round === 1)).toMatchObject({ accepted: 1 });

    // A second task: every answer to chunk 1 is lost (the server stored it), so the submit fails
    // past its retries. Called again, it sends only chunk 1, whose int8 bytes are the same as before
    // (the same stochastic rounding): the server takes it as a replay, not a conflict, and the commit counts it once.
    const task2 = await largeTask({ updateEncoding: 'int8', rounds: { clientsPerRound: 1, overSelection: 1, deadlineSeconds: 300 } });
    const creds2 = await admin.registerClient(task2.id);
    const seen2: string[] = [];
    let lose = true;
    const client2 = new FedgeClient({
      baseUrl: url,
      taskId: task2.id,
      token: creds2.token,
      maxRetries: 1,
      fetch: async (input, init) => {
        const path = new URL(String(input)).pathname.replace(/^.*\/rounds\/1\//, '');
        const res = await fetch(input, init);
        if (!path.startsWith('update/')) return res;
        if (lose && path === 'update/chunks/1') {
          seen2.push(`${path} lost`);
          throw new TypeError('fetch failed: connection reset after the request was sent');
        }
        seen2.push(`${path} ${res.status}${path.includes('chunks') && (await res.clone().json()).replayed ? ' replayed' : ''}`);
        return res;
      },
    });
    await client2.waitForAssignment();
    await expect(client2.submitUpdate(args)).rejects.toThrow(/connection reset/);
    expect(seen2.filter((p) => p.startsWith('update/chunks/1'))).toEqual(['update/chunks/1 lost', 'update/chunks/1 lost']);
    lose = false;
    seen2.length = 0;
    const ack2 = await client2.submitUpdate(args);
    expect(ack2).toMatchObject({ round: 1, seq: 1 });
    expect(seen2).toEqual(['update/chunks/1 200 replayed', 'update/commit 200']);
    expect((await admin.listRounds(task2.id)).find((r) => r.round === 1)).toMatchObject({ accepted: 1 });
  });
});
