/**
 * @module The simulated-client runner: K virtual clients, each holding a partition of real MNIST,
 * take part in federated training through the real SDK, over real HTTP, against a real aggregator.
 * After each round the published version is evaluated on a held-out test split ("server-side"
 * evaluation, done here because the aggregator never loads tfjs).
 */
import * as tf from '@tensorflow/tfjs';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import { FedgeClient } from '../../client-sdk/src/client.ts';
import type { ParticipationResult } from '../../client-sdk/src/client.ts';
import { buildModel, trainLocally } from '../../client-sdk/src/training.ts';
import { loadMnistT10k, splitTrainTest, subset, type Dataset } from './mnist.ts';
import { dirichlet, iid, pathological, permutation, rng } from './partition.ts';
import { buildSimModel, inputShape, type ModelName } from './models.ts';
import { useWasmBackend } from './tf-backend.ts';

export type PartitionName = 'iid' | 'dirichlet' | 'pathological';
/** gaussian: Δ ~ N(0, σ²) (no training); boost: the trained Δ × boost; signflip: −Δ. */
export type AttackName = 'gaussian' | 'boost' | 'signflip';

export interface SimulationOptions {
  baseUrl: string;
  adminToken: string;
  clients: number;
  /** C: the fraction of clients taking part in each round. */
  fraction: number;
  rounds: number;
  partition: PartitionName;
  /** Dirichlet concentration (label skew); default 0.5. */
  alpha?: number;
  model: ModelName;
  /** E: local epochs. */
  epochs: number;
  /** B: local batch size; `Infinity` means the client's whole data set (FedSGD when E = 1). */
  batchSize: number;
  learningRate: number;
  seed: number;
  /** Held-out test examples (of the 10,000); the rest are partitioned. Default 2,000. */
  testSize?: number;
  /** Stop once the test accuracy reaches this. */
  target?: number;
  /** The task's aggregation strategy (default FedAvg), e.g. `{ name: 'median' }`. */
  strategy?: { name: string; [param: string]: number | string };
  /** Byzantine clients: a seeded fraction of the K clients sends attacks instead of honest updates. */
  malicious?: { fraction: number; attack: AttackName; sigma?: number; boost?: number };
  onRound?: (report: RoundReport) => void;
  /** Called as each client finishes in a round. */
  onClient?: (round: number, done: number, of: number) => void;
}

export interface RoundReport {
  round: number;
  version: number;
  accuracy: number;
  loss: number;
  participants: number;
  examples: number;
  /** Bytes sent and received by the round's clients (request and response bodies). */
  bytesUp: number;
  bytesDown: number;
  seconds: number;
  /** Of which: local training, and evaluating the new version. */
  trainSeconds: number;
  evalSeconds: number;
}

export interface SimulationResult {
  taskId: string;
  reports: RoundReport[];
  /** First round whose accuracy reached `target`, if any. */
  roundsToTarget: number | null;
}

interface VirtualClient {
  client: FedgeClient;
  malicious: boolean;
  xs: tf.Tensor;
  ys: tf.Tensor;
  n: number;
  traffic: { up: number; down: number };
}

export async function simulate(o: SimulationOptions): Promise<SimulationResult> {
  // tfjs shuffles each epoch with Math.random, which cannot be seeded: replace it for the run so a
  // seed reproduces the whole simulation (partitions, sampling, attacks and local shuffles).
  const unseeded = Math.random;
  Math.random = rng(o.seed ^ 0x7f4a7c15);
  try {
    return await run(o);
  } finally {
    Math.random = unseeded;
  }
}

async function run(o: SimulationOptions): Promise<SimulationResult> {
  await useWasmBackend();
  const all = loadMnistT10k();
  const { train, test } = splitTrainTest(all, o.testSize ?? 2_000, o.seed);
  const parts = partitionOf(o.partition, train.labels, o.clients, o.seed, o.alpha ?? 0.5);
  const shape = inputShape(o.model);
  const testData = tensorsOf(test, shape);
  const perRound = Math.max(1, Math.round(o.fraction * o.clients));
  const largest = Math.max(...parts.map((p) => p.length));
  const batchSize = Number.isFinite(o.batchSize) ? o.batchSize : largest;

  const admin = new FedgeAdmin({ baseUrl: o.baseUrl, token: o.adminToken });
  const initial = buildSimModel(o.model, o.seed);
  const task = await admin.createTask(initial, {
    name: `sim ${o.model} ${o.partition} K=${o.clients} C=${o.fraction} E=${o.epochs} B=${Number.isFinite(o.batchSize) ? o.batchSize : '∞'}`,
    rounds: { clientsPerRound: perRound, minClients: perRound, overSelection: 1, deadlineSeconds: 3_600, maxExamplesPerClient: largest },
    plan: { epochs: o.epochs, batchSize, learningRate: o.learningRate, optimizer: 'sgd', loss: 'categoricalCrossentropy' },
    ...(o.strategy ? { strategy: o.strategy } : {}),
  });
  const attackers = new Set(permutation(o.clients, rng(o.seed ^ 0xbad)).slice(0, Math.round((o.malicious?.fraction ?? 0) * o.clients)));
  initial.dispose();

  const clients: VirtualClient[] = [];
  for (let k = 0; k < o.clients; k++) {
    const creds = await admin.registerClient(task.id, `virtual-${k}`);
    const traffic = { up: 0, down: 0 };
    const client = new FedgeClient({ baseUrl: o.baseUrl, taskId: task.id, token: creds.token, onTraffic: (up, down) => ((traffic.up += up), (traffic.down += down)) });
    const { xs, ys } = tensorsOf(subset(train, parts[k]!), shape);
    clients.push({ client, malicious: attackers.has(k), xs, ys, n: parts[k]!.length, traffic });
  }

  const evaluator = clients[0]!.client;
  const pick = rng(o.seed ^ 0x5eed);
  const reports: RoundReport[] = [];
  let roundsToTarget: number | null = null;
  try {
    for (let r = 1; r <= o.rounds; r++) {
      const started = performance.now();
      const chosen = sample(clients, perRound, pick);
      for (const c of chosen) (c.traffic.up = 0), (c.traffic.down = 0);
      let trainMs = 0;
      let examples = 0;
      let version = -1;
      for (const [i, c] of chosen.entries()) {
        const t0 = performance.now();
        let trainStarted = 0;
        const result = c.malicious && o.malicious
          ? await attack(c, o.malicious, o.seed * 1_000 + r)
          : await c.client.participate({ xs: c.xs, ys: c.ys }, { onStep: (step) => step === 'training' && (trainStarted = performance.now()), onEpochEnd: () => undefined });
        trainMs += trainStarted ? performance.now() - trainStarted : performance.now() - t0;
        if (result.status !== 'accepted') throw new Error(`round ${r}: client ${i} was late`);
        examples += result.train.numExamples;
        version = result.assignment.baseVersion + 1;
        o.onClient?.(r, i + 1, chosen.length);
      }
      const evalStarted = performance.now();
      const { accuracy, loss } = await evaluateVersion(evaluator, version, testData);
      await admin.setServerMetrics(task.id, version, { accuracy, loss }); // shown on the version, beside federated evaluation
      const evalMs = performance.now() - evalStarted;
      const report: RoundReport = {
        round: r,
        version,
        accuracy,
        loss,
        participants: chosen.length,
        examples,
        bytesUp: chosen.reduce((a, c) => a + c.traffic.up, 0),
        bytesDown: chosen.reduce((a, c) => a + c.traffic.down, 0),
        seconds: (performance.now() - started) / 1000,
        trainSeconds: trainMs / 1000,
        evalSeconds: evalMs / 1000,
      };
      reports.push(report);
      o.onRound?.(report);
      if (o.target !== undefined && accuracy >= o.target) {
        roundsToTarget = r;
        break;
      }
    }
  } finally {
    for (const c of clients) tf.dispose([c.xs, c.ys]);
    tf.dispose([testData.xs, testData.ys]);
  }
  return { taskId: task.id, reports, roundsToTarget };
}

/** A Byzantine participation: the same protocol, a poisoned Δ (Gaussian noise, boosted or sign-flipped). */
async function attack(c: VirtualClient, m: NonNullable<SimulationOptions['malicious']>, seed: number): Promise<ParticipationResult> {
  const assignment = await c.client.waitForAssignment();
  const [task, weights] = await Promise.all([c.client.getTaskModel(), c.client.getWeights(assignment.baseVersion)]);
  let delta: Float32Array;
  let metrics: Record<string, number> = {};
  if (m.attack === 'gaussian') {
    const next = rng(seed);
    const sigma = m.sigma ?? 10;
    delta = Float32Array.from({ length: weights.flat.length }, () => sigma * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()));
  } else {
    const model = await buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
    try {
      ({ delta, metrics } = await trainLocally(model, weights.flat, { xs: c.xs, ys: c.ys }, assignment.plan));
    } finally {
      model.dispose();
    }
    const factor = m.attack === 'boost' ? (m.boost ?? 10) : -1;
    for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * factor;
  }
  const ack = await c.client.submitUpdate({ round: assignment.round, baseVersion: assignment.baseVersion, delta, numExamples: c.n, metrics });
  return { status: 'accepted', ack, assignment, train: { numExamples: c.n, metrics } };
}

/** Waits for a published version, rebuilds it from its stored weights, and evaluates it. */
export async function evaluateVersion(client: FedgeClient, version: number, test: { xs: tf.Tensor; ys: tf.Tensor }): Promise<{ accuracy: number; loss: number }> {
  for (let i = 0; ; i++) {
    const current = await client.getManifest('current');
    if (current.version >= version) break;
    if (i > 400) throw new Error(`version ${version} was not published`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const [task, weights] = await Promise.all([client.getTaskModel(), client.getWeights(version)]);
  const model = await buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
  try {
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const [loss, acc] = model.evaluate(test.xs, test.ys, { batchSize: 500 }) as tf.Scalar[];
    const out = { loss: (await loss!.data())[0]!, accuracy: (await acc!.data())[0]! };
    tf.dispose([loss!, acc!]);
    return out;
  } finally {
    model.dispose();
  }
}

export function tensorsOf(ds: Dataset, shape: number[]): { xs: tf.Tensor; ys: tf.Tensor } {
  return tf.tidy(() => ({
    xs: tf.tensor(ds.images, [ds.n, ...shape], 'float32'),
    ys: tf.oneHot(tf.tensor1d(Int32Array.from(ds.labels), 'int32'), 10),
  }));
}

function partitionOf(name: PartitionName, labels: Uint8Array, clients: number, seed: number, alpha: number): number[][] {
  if (name === 'iid') return iid(labels, clients, seed);
  if (name === 'dirichlet') return dirichlet(labels, clients, alpha, seed);
  return pathological(labels, clients, 2, seed);
}

/** m distinct items, uniformly (partial Fisher–Yates with a seeded PRNG). */
function sample<T>(items: readonly T[], m: number, random: () => number): T[] {
  const pool = [...items];
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, m);
}
