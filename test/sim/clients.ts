/**
 * @module Virtual clients: the data each one holds (a seeded partition of MNIST, or the user's
 * data module), and one participation as a job (honest training through the SDK, or an attack),
 * the same in the main thread and in a worker thread (pool.ts).
 *
 * A job's local shuffles are seeded by (run seed, client, round), not by the order jobs happen to
 * run in, so a client trains the same Δ for the same base whichever thread trains it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as tf from '@tensorflow/tfjs';
import type { Assignment, ParticipationResult } from '../../client-sdk/src/client.ts';
import { FedgeClient } from '../../client-sdk/src/client.ts';
import { FedgeError } from '../../client-sdk/src/errors.ts';
import { buildModel, trainLocally } from '../../client-sdk/src/training.ts';
import { rng } from '../shared/random.ts';
import { type Dataset, loadMnistT10k, splitTrainTest, subset } from './mnist.ts';
import { inputShape, type ModelName } from './models.ts';
import { dirichlet, iid, pathological } from './partition.ts';
import { loadUserData, type UserData } from './user-data.ts';

export type PartitionName = 'iid' | 'dirichlet' | 'pathological';
/** gaussian: Δ ~ N(0, σ²) (no training); boost: the trained Δ × boost; signflip: −Δ. */
export type AttackName = 'gaussian' | 'boost' | 'signflip';
export interface MaliciousOptions {
  fraction: number;
  attack: AttackName;
  sigma?: number;
  boost?: number;
}

/** Where the clients' data comes from: plain data, so a worker thread can build the same. */
export type DataSource =
  | { kind: 'mnist'; model: ModelName; partition: PartitionName; alpha: number; clients: number; seed: number; testSize: number }
  | { kind: 'user'; dataPath: string; clients: number | undefined; seed: number };

export interface VirtualClient {
  k: number;
  client: FedgeClient;
  malicious: boolean;
  xs: tf.Tensor;
  ys: tf.Tensor;
  n: number;
  traffic: { up: number; down: number };
}

/** The clients' tensors and the held-out set (the caller disposes them). */
export async function dataOf(source: DataSource): Promise<UserData> {
  if (source.kind === 'user') return loadUserData(source.dataPath, { clients: source.clients, seed: source.seed });
  const { train, test } = splitTrainTest(loadMnistT10k(), source.testSize, source.seed);
  const parts = partitionOf(source.partition, train.labels, source.clients, source.seed, source.alpha);
  const shape = inputShape(source.model);
  return { clients: parts.map((p) => ({ ...tensorsOf(subset(train, p), shape), n: p.length })), test: tensorsOf(test, shape) };
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

/** Client `k` of a task, holding `data`, its traffic counted. */
export function virtualClient(
  k: number,
  baseUrl: string,
  taskId: string,
  token: string,
  data: { xs: tf.Tensor; ys: tf.Tensor; n: number },
  malicious: boolean,
): VirtualClient {
  const traffic = { up: 0, down: 0 };
  const client = new FedgeClient({
    baseUrl,
    taskId,
    token,
    onTraffic: (up, down) => {
      traffic.up += up;
      traffic.down += down;
    },
  });
  return { k, client, malicious, xs: data.xs, ys: data.ys, n: data.n, traffic };
}

/** One participation of client `k` in `round`; `malicious` set for an attacker. */
export interface Job {
  k: number;
  round: number;
  seed: number;
  malicious?: MaliciousOptions;
  /** Give up (late) rather than wait longer than this for an assignment (DP rounds: the client was drawn, or it is too late). */
  maxWaitMs?: number;
}
export interface JobResult {
  k: number;
  status: 'accepted' | 'late';
  numExamples: number;
  baseVersion: number;
  trainMs: number;
  up: number;
  down: number;
}

/**
 * tfjs shuffles each epoch with Math.random. While jobs run, Math.random is a dispatcher: a call
 * made in a job's async context draws from that job's generator, seeded by (run, client, round);
 * any other call draws from whatever Math.random was when the first job started (the run's own
 * seeded generator). So jobs running concurrently (secure aggregation's rounds) draw the same
 * numbers as jobs running one after another, or in a worker thread.
 */
const jobRandom = new AsyncLocalStorage<() => number>();
let runningJobs = 0;
let outside: () => number = Math.random;

/** Runs `body` with Math.random drawing from a generator seeded by `seed` in its async context. */
export async function withJobRandom<T>(seed: number, body: () => Promise<T>): Promise<T> {
  if (runningJobs++ === 0) {
    outside = Math.random;
    Math.random = () => (jobRandom.getStore() ?? outside)();
  }
  try {
    return await jobRandom.run(rng(seed), body);
  } finally {
    if (--runningJobs === 0) Math.random = outside;
  }
}

/** Runs `job` on client `c`: honest training through `participate()`, or its attack. */
export function runJob(c: VirtualClient, job: Job): Promise<JobResult> {
  return withJobRandom((job.seed * 1_000_003 + job.k * 7_919 + job.round) >>> 0, () => seededJob(c, job));
}

async function seededJob(c: VirtualClient, job: Job): Promise<JobResult> {
  c.traffic.up = 0;
  c.traffic.down = 0;
  const t0 = performance.now();
  let trainStarted = 0;
  const result =
    c.malicious && job.malicious
      ? await attack(c, job.malicious, job.seed * 1_000 + job.round)
      : await c.client
          .participate(
            { xs: c.xs, ys: c.ys },
            {
              ...(job.maxWaitMs === undefined ? {} : { maxWaitMs: job.maxWaitMs }),
              onStep: (step) => {
                if (step === 'training') trainStarted = performance.now();
              },
            },
          )
          .catch((e: unknown) => {
            // No assignment within maxWaitMs: the round it was drawn for is over.
            if (e instanceof FedgeError && e.code === 'no_assignment') return { status: 'late' as const };
            throw e;
          });
  const trainMs = trainStarted ? performance.now() - trainStarted : performance.now() - t0;
  const base = { k: job.k, trainMs, up: c.traffic.up, down: c.traffic.down };
  if (result.status !== 'accepted') return { ...base, status: 'late', numExamples: 0, baseVersion: -1 };
  return { ...base, status: 'accepted', numExamples: result.train.numExamples, baseVersion: result.assignment.baseVersion };
}

/** A poisoned Δ for a base (Gaussian noise, or the trained Δ boosted or sign-flipped). */
export async function poison(
  c: VirtualClient,
  m: MaliciousOptions,
  seed: number,
  base: Float32Array,
  task: { modelTopology: Record<string, unknown>; tensors: Parameters<typeof buildModel>[1] },
  assignment: Assignment,
): Promise<Float32Array> {
  if (m.attack === 'gaussian') {
    const next = rng(seed);
    const sigma = m.sigma ?? 10;
    return Float32Array.from({ length: base.length }, () => sigma * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()));
  }
  const { delta } = await trainOn(c, task.modelTopology, task.tensors, base, assignment.plan);
  const factor = m.attack === 'boost' ? (m.boost ?? 10) : -1;
  for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * factor;
  return delta;
}

/** A Byzantine participation: the same protocol, a poisoned Δ (Gaussian noise, boosted or sign-flipped). */
async function attack(c: VirtualClient, m: MaliciousOptions, seed: number): Promise<ParticipationResult> {
  const assignment = await c.client.waitForAssignment();
  const [task, weights] = await Promise.all([c.client.getTaskModel(), c.client.getWeights(assignment.baseVersion)]);
  const delta = await poison(c, m, seed, weights.flat, { modelTopology: task.modelTopology, tensors: weights.manifest.tensors }, assignment);
  const ack = await c.client.submitUpdate({ round: assignment.round, baseVersion: assignment.baseVersion, delta, numExamples: c.n });
  return { status: 'accepted', ack, assignment, train: { numExamples: c.n, metrics: {} }, privacy: null, secureAggregation: null };
}

/** Honest local training of one virtual client from the given weights (the model is disposed). */
export async function trainOn(
  c: VirtualClient,
  modelTopology: Record<string, unknown>,
  tensors: Parameters<typeof buildModel>[1],
  base: Float32Array,
  plan: Assignment['plan'],
) {
  const model = await buildModel(modelTopology, tensors, base);
  try {
    return await trainLocally(model, base, { xs: c.xs, ys: c.ys }, plan);
  } finally {
    model.dispose();
  }
}
