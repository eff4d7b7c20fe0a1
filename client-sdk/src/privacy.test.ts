/**
 * Differential privacy on the device: the unit behaviour of `privatizeUpdate`, then the SDK in DP
 * tasks of the real aggregator (wrangler dev, started by test/node/global-setup.ts) with real
 * tfjs training.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { argmaxData } from '../../test/sim/synthetic.ts';
import { useWasmBackend } from '../../test/sim/tf-backend.ts';
import { FedgeAdmin, FedgeClient, type PrivacyOptions } from './index.ts';
import { localEpsilon, privatizeUpdate } from './privacy.ts';
import { clipToNorm, l2Norm } from './protocol/dp.ts';
import { UPDATE_META } from './protocol/messages.ts';
import { sampledGaussianEpsilon } from './protocol/rdp.ts';
import { concatTensors, decodeTensors } from './protocol/safetensors.ts';
import { buildModel, trainLocally } from './training.ts';

describe('privatizeUpdate', () => {
  it('clips a copy to the norm exactly, leaves the trained update as it is, and reports the unclipped bit when asked', () => {
    const trained = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 0.3);
    const before = trained.slice();
    const { delta, metadata, report } = privatizeUpdate(trained, { mode: 'central', clipNorm: 1, noiseMultiplier: 0, delta: 1e-5, reportUnclipped: true });
    expect(trained).toEqual(before);
    expect(l2Norm(delta)).toBeLessThanOrEqual(1);
    expect(l2Norm(delta)).toBeGreaterThan(0.99999);
    expect(report).toEqual({ mode: 'central', clipNorm: 1, normBeforeClipping: l2Norm(before), clipped: true, noiseMultiplier: 0, delta: 1e-5 });
    expect(metadata).toEqual({ [UPDATE_META.unclipped]: '0' });
    const small = privatizeUpdate(new Float32Array(10).fill(0.01), { mode: 'central', clipNorm: 1, noiseMultiplier: 0, delta: 1e-5, reportUnclipped: true });
    expect(small.metadata).toEqual({ [UPDATE_META.unclipped]: '1' });
    expect(small.report.clipped).toBe(false);
  });

  it('under local DP adds N(0, (z·S)²) per coordinate and reports the round’s ε', () => {
    const z = 2;
    const S = 0.5;
    const { delta, report } = privatizeUpdate(new Float32Array(200_000), {
      mode: 'local',
      clipNorm: S,
      noiseMultiplier: z,
      delta: 1e-6,
      reportUnclipped: false,
    });
    let sq = 0;
    for (const x of delta) sq += x * x;
    const sd = Math.sqrt(sq / delta.length);
    // The sample standard deviation of 200,000 normal draws is within 5·σ/√(2n) of σ.
    expect(Math.abs(sd - z * S)).toBeLessThan((5 * z * S) / Math.sqrt(2 * delta.length));
    expect(report.epsilon).toBe(sampledGaussianEpsilon(1, z / 2, 1, 1e-6).epsilon);
    expect(report.epsilon).toBe(localEpsilon(z, 1e-6));
    // Replace-one sensitivity 2S: a bigger z gives a smaller ε, and rounds compose.
    expect(localEpsilon(4, 1e-6)).toBeLessThan(localEpsilon(2, 1e-6));
    expect(localEpsilon(2, 1e-6, 10)).toBeGreaterThan(localEpsilon(2, 1e-6));
  });
});

const url = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: url, token: inject('fedgeAdminToken') });

function tinyModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
}

async function dpTask(privacy: PrivacyOptions, rounds: Record<string, number>) {
  const model = tinyModel();
  const task = await admin.createTask(model, { name: 'dp sdk test', rounds, plan: { epochs: 2, batchSize: 8, learningRate: 0.2 }, privacy });
  model.dispose();
  return task;
}

async function newClient(taskId: string, extra: Partial<ConstructorParameters<typeof FedgeClient>[0]> = {}) {
  const creds = await admin.registerClient(taskId);
  return new FedgeClient({ baseUrl: url, taskId, token: creds.token, ...extra });
}

async function waitForVersion(client: FedgeClient, version: number) {
  for (let i = 0; i < 200; i++) {
    const m = await client.getManifest('current');
    if (m.version >= version) return client.getManifest(version);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`version ${version} never appeared`);
}

beforeAll(async () => {
  expect(await useWasmBackend()).toBe('wasm');
});

describe('the SDK in differentially private tasks', () => {
  it('clips on the device when the task clips on the client: the server accepts, noises, and records ε', async () => {
    const S = 0.05; // far below what two epochs of training move the weights
    const task = await dpTask(
      { mode: 'central', noiseMultiplier: 1, clipNorm: S, samplingRate: 1, clipping: 'client' },
      { clientsPerRound: 2, minClients: 1, deadlineSeconds: 3 },
    );
    const clients = [await newClient(task.id), await newClient(task.id)];
    const results = await Promise.all(clients.map((c, i) => c.participate(argmaxData(40, i + 1))));
    for (const r of results) {
      expect(r.status).toBe('accepted');
      if (r.status !== 'accepted') continue;
      expect(r.assignment.privacy).toEqual({ mode: 'central', clipNorm: S, noiseMultiplier: 0, delta: 1e-5, reportUnclipped: false });
      expect(r.privacy).toMatchObject({ mode: 'central', clipNorm: S, clipped: true, noiseMultiplier: 0 });
      expect(r.privacy!.normBeforeClipping).toBeGreaterThan(S);
      expect(r.privacy!.epsilon).toBeUndefined();
    }
    const m = await waitForVersion(clients[0]!, 1);
    expect(m.privacy).toMatchObject({ mode: 'central', clipping: 'client', clipNorm: S, rounds: 1, epsilon: sampledGaussianEpsilon(1, 1, 1, 1e-5).epsilon });
    expect(m.metrics).toBeNull();
  });

  it('under local DP sends only the clipped, noised update, and reports its ε', async () => {
    const z = 3;
    const S = 0.1;
    const task = await dpTask({ mode: 'local', noiseMultiplier: z, clipNorm: S, delta: 1e-6 }, { clientsPerRound: 1 });
    const bodies: Uint8Array[] = [];
    const client = await newClient(task.id, {
      fetch: async (input, init) => {
        if (init?.method === 'PUT' && String(input).endsWith('/update')) bodies.push(new Uint8Array(init.body as Uint8Array));
        return fetch(input, init);
      },
    });
    const assignment = await client.waitForAssignment();
    expect(assignment.privacy).toEqual({ mode: 'local', clipNorm: S, noiseMultiplier: z, delta: 1e-6, reportUnclipped: false });
    const { flat, manifest } = await client.getWeights(0);
    const model = await buildModel((await client.getTaskModel()).modelTopology, manifest.tensors, flat);
    const { xs, ys } = argmaxData(40, 3);
    const trained = await trainLocally(model, flat, { xs, ys }, assignment.plan);
    tf.dispose([xs, ys]);
    model.dispose();
    // submitUpdate alone applies what the check-in asked: the app cannot forget it.
    await client.submitUpdate({ round: 1, baseVersion: 0, delta: trained.delta, numExamples: trained.numExamples, metrics: trained.metrics });
    const decoded = decodeTensors(bodies[0]!);
    const sent = concatTensors(decoded.tensors);
    expect(decoded.metadata[UPDATE_META.metrics]).toBeUndefined(); // local metrics stay on the device
    // What left is not the trained update, nor its clipped form: that plus noise of σ = z·S
    // (67 parameters: 0.6…1.4 × z·S is ±4.6 standard errors of the sample σ).
    expect(l2Norm(trained.delta)).toBeGreaterThan(S);
    const clipped = trained.delta.slice();
    clipToNorm(clipped, S);
    const residual = Float64Array.from(sent, (x, i) => x - clipped[i]!);
    const rms = Math.sqrt(residual.reduce((a, r) => a + r * r, 0) / residual.length);
    expect(rms).toBeGreaterThan(0.6 * z * S);
    expect(rms).toBeLessThan(1.4 * z * S);
    const m = await waitForVersion(client, 1);
    expect(m.privacy).toMatchObject({ mode: 'local', clipping: 'local', noiseMultiplier: z, clipNorm: S, epsilonPerRound: localEpsilon(z, 1e-6), rounds: 1 });
  });
});
