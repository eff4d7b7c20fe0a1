/**
 * @module The simulated-client runner: K virtual clients, each holding a partition of real MNIST,
 * take part in federated training through the real SDK, over real HTTP, against a real aggregator.
 * After each round the published version is evaluated on a held-out test split ("server-side"
 * evaluation, done here because the aggregator never loads tfjs).
 *
 * A `fedbuff` task has no synchronized rounds, so it gets an asynchronous driver instead: a pool of
 * `concurrency` virtual clients in flight, each checking in (and so training on whatever version is
 * current), then submitting after a seeded random number of other submissions, so updates arrive
 * 0..several versions stale, as FedBuff expects. Each published version is evaluated and reported.
 */
import * as tf from '@tensorflow/tfjs';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import type { Assignment, ParticipationResult } from '../../client-sdk/src/client.ts';
import { FedgeClient } from '../../client-sdk/src/client.ts';
import { LateUpdateError } from '../../client-sdk/src/errors.ts';
import { buildModel, trainLocally } from '../../client-sdk/src/training.ts';
import { rng } from '../shared/random.ts';
import { type Dataset, loadMnistT10k, splitTrainTest, subset } from './mnist.ts';
import { buildSimModel, inputShape, type ModelName } from './models.ts';
import { dirichlet, iid, pathological, permutation } from './partition.ts';
import { useWasmBackend } from './tf-backend.ts';
import type { UserData } from './user-data.ts';

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
  /**
   * FedBuff only (asynchronous driver): virtual clients in flight at once (default 2 × bufferSize,
   * at most `clients`), and the most other submissions that may land between one client's check-in
   * and its own submission (uniform 0..maxDelay, seeded; default 2 × concurrency).
   */
  concurrency?: number;
  maxDelay?: number;
  /**
   * The user's own model and data instead of MNIST (`--model ./model.json --data ./data.mjs`): the
   * saved model (its training config gives loss and optimizer), one data set per client (`clients`
   * must equal their number; `partition` and `testSize` are unused), and the held-out set if any.
   * `learningRate` overrides the saved one only when given.
   */
  user?: { model: tf.io.ModelArtifacts; data: UserData; label: string; learningRate?: number };
  onRound?: (report: RoundReport) => void;
  /** Called as each client finishes in a round (FedBuff: as each update of a buffer is accepted). */
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
  /** FedBuff only: updates accepted so far (cumulative), updates refused as too stale (cumulative), and the buffer's staleness. */
  updates?: number;
  refused?: number;
  meanStaleness?: number;
  maxStaleness?: number;
}

export interface SimulationResult {
  taskId: string;
  reports: RoundReport[];
  /** First round whose accuracy reached `target`, if any (FedBuff: the first version). */
  roundsToTarget: number | null;
  /** FedBuff only: updates accepted when `target` was first reached. */
  updatesToTarget?: number | null;
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

/** The clients' data, the held-out set and the initial model: MNIST partitioned for a built-in model, or the user's own. */
function dataOf(o: SimulationOptions): { data: UserData; initial: tf.LayersModel | tf.io.ModelArtifacts; label: string } {
  if (o.user) {
    if (o.user.data.clients.length !== o.clients) throw new Error(`${o.clients} clients asked for, the data module gave ${o.user.data.clients.length}`);
    return { data: o.user.data, initial: o.user.model, label: o.user.label };
  }
  const { train, test } = splitTrainTest(loadMnistT10k(), o.testSize ?? 2_000, o.seed);
  const parts = partitionOf(o.partition, train.labels, o.clients, o.seed, o.alpha ?? 0.5);
  const shape = inputShape(o.model);
  return {
    data: { clients: parts.map((p) => ({ ...tensorsOf(subset(train, p), shape), n: p.length })), test: tensorsOf(test, shape) },
    initial: buildSimModel(o.model, o.seed),
    label: `${o.model} ${o.partition}`,
  };
}

async function run(o: SimulationOptions): Promise<SimulationResult> {
  await useWasmBackend();
  const { data, initial, label } = dataOf(o);
  const testData = data.test;
  const perRound = Math.max(1, Math.round(o.fraction * o.clients));
  const largest = Math.max(...data.clients.map((c) => c.n));
  const batchSize = Number.isFinite(o.batchSize) ? o.batchSize : largest;

  const admin = new FedgeAdmin({ baseUrl: o.baseUrl, token: o.adminToken });
  const task = await admin.createTask(initial, {
    name: `sim ${label} K=${o.clients} C=${o.fraction} E=${o.epochs} B=${Number.isFinite(o.batchSize) ? o.batchSize : '∞'}`,
    rounds: { clientsPerRound: perRound, minClients: perRound, overSelection: 1, deadlineSeconds: 3_600, maxExamplesPerClient: largest },
    // The user's saved model brings its loss and optimizer (its training config); MNIST models train with SGD.
    plan: o.user
      ? { epochs: o.epochs, batchSize, ...(o.user.learningRate === undefined ? {} : { learningRate: o.user.learningRate }) }
      : { epochs: o.epochs, batchSize, learningRate: o.learningRate, optimizer: 'sgd', loss: 'categoricalCrossentropy' },
    ...(o.strategy ? { strategy: o.strategy } : {}),
  });
  const attackers = new Set(permutation(o.clients, rng(o.seed ^ 0xbad)).slice(0, Math.round((o.malicious?.fraction ?? 0) * o.clients)));
  if (initial instanceof tf.LayersModel) initial.dispose();

  const clients: VirtualClient[] = [];
  for (let k = 0; k < o.clients; k++) {
    const creds = await admin.registerClient(task.id, `virtual-${k}`);
    const traffic = { up: 0, down: 0 };
    const client = new FedgeClient({
      baseUrl: o.baseUrl,
      taskId: task.id,
      token: creds.token,
      onTraffic: (up, down) => {
        traffic.up += up;
        traffic.down += down;
      },
    });
    const { xs, ys, n } = data.clients[k]!;
    clients.push({ client, malicious: attackers.has(k), xs, ys, n, traffic });
  }

  const evaluator = clients[0]!.client;
  const pick = rng(o.seed ^ 0x5eed);
  const reports: RoundReport[] = [];
  let roundsToTarget: number | null = null;
  try {
    if (o.strategy?.name === 'fedbuff') return { taskId: task.id, ...(await runAsync(o, admin, task.id, clients, testData, pick)) };
    for (let r = 1; r <= o.rounds; r++) {
      const started = performance.now();
      const chosen = sample(clients, perRound, pick);
      for (const c of chosen) {
        c.traffic.up = 0;
        c.traffic.down = 0;
      }
      let trainMs = 0;
      let examples = 0;
      let version = -1;
      for (const [i, c] of chosen.entries()) {
        const t0 = performance.now();
        let trainStarted = 0;
        const result =
          c.malicious && o.malicious
            ? await attack(c, o.malicious, o.seed * 1_000 + r)
            : await c.client.participate(
                { xs: c.xs, ys: c.ys },
                {
                  onStep: (step) => {
                    if (step === 'training') trainStarted = performance.now();
                  },
                  onEpochEnd: () => undefined,
                },
              );
        trainMs += trainStarted ? performance.now() - trainStarted : performance.now() - t0;
        if (result.status !== 'accepted') throw new Error(`round ${r}: client ${i} was late`);
        examples += result.train.numExamples;
        version = result.assignment.baseVersion + 1;
        o.onClient?.(r, i + 1, chosen.length);
      }
      const evalStarted = performance.now();
      const { accuracy, loss } = await evaluateAndRecord(admin, evaluator, task.id, version, testData);
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
    if (testData) tf.dispose([testData.xs, testData.ys]);
  }
  return { taskId: task.id, reports, roundsToTarget };
}

/**
 * The asynchronous driver (FedBuff). Logical time is counted in submissions: a client checks in (so
 * its base is the version current at that moment), trains, and is due after a seeded uniform number
 * of other submissions (0..maxDelay); the due client with the smallest due time submits next, so the
 * order, and with it every staleness, is reproducible from the seed. Every `bufferSize` accepted
 * updates the aggregator publishes a version, which is evaluated like a synchronous round.
 */
async function runAsync(
  o: SimulationOptions,
  admin: FedgeAdmin,
  taskId: string,
  clients: VirtualClient[],
  testData: { xs: tf.Tensor; ys: tf.Tensor } | undefined,
  pick: () => number,
): Promise<{ reports: RoundReport[]; roundsToTarget: number | null; updatesToTarget: number | null }> {
  const bufferSize = Number(o.strategy?.bufferSize ?? 10);
  if (!(bufferSize >= 1 && bufferSize <= clients.length)) throw new Error(`fedbuff: bufferSize ${bufferSize} needs 1..${clients.length} clients`);
  const concurrency = Math.min(clients.length, Math.max(1, Math.round(o.concurrency ?? 2 * bufferSize)));
  const maxDelay = Math.max(0, Math.round(o.maxDelay ?? 2 * concurrency));
  const delays = rng(o.seed ^ 0xde1a7);
  const evaluator = clients[0]!.client;
  interface Job {
    c: VirtualClient;
    assignment: Assignment;
    delta: Float32Array;
    n: number;
    metrics: Record<string, number>;
    due: number;
    seq: number;
  }
  const inFlight: Job[] = [];
  const busy = new Set<VirtualClient>();
  /** Clients that already submitted to the open buffer: they may not join it again. */
  let blocked = new Set<VirtualClient>();
  const reports: RoundReport[] = [];
  let roundsToTarget: number | null = null;
  let updatesToTarget: number | null = null;
  let submissions = 0,
    accepted = 0,
    refused = 0,
    seq = 0,
    version = 0,
    draws = 0;
  let started = performance.now(),
    trainMs = 0,
    examples = 0,
    staleSum = 0,
    staleMax = 0,
    inBuffer = 0;
  const traffic = () => clients.reduce((a, c) => ({ up: a.up + c.traffic.up, down: a.down + c.traffic.down }), { up: 0, down: 0 });
  let since = traffic();

  /** Checks a client in (the SDK step API), trains it on its base version (or poisons), and puts it in flight. */
  async function launch(): Promise<boolean> {
    for (;;) {
      const idle = clients.filter((c) => !busy.has(c) && !blocked.has(c));
      if (idle.length === 0) return false;
      const c = idle[Math.floor(pick() * idle.length)]!;
      const r = await c.client.checkIn();
      if (r.status === 'retry_later') {
        if (r.reason === 'already_submitted') blocked.add(c);
        else await new Promise((res) => setTimeout(res, 25)); // round_closing: the next buffer opens in a moment
        continue;
      }
      const assignment = r;
      const t0 = performance.now();
      const [task, weights] = await Promise.all([c.client.getTaskModel(), c.client.getWeights(assignment.baseVersion)]);
      let delta: Float32Array;
      let metrics: Record<string, number> = {};
      if (c.malicious && o.malicious) {
        delta = await poison(c, o.malicious, o.seed * 1_000_003 + draws++, weights.flat, task, assignment);
      } else {
        ({ delta, metrics } = await trainOn(c, task.modelTopology, weights.manifest.tensors, weights.flat, assignment.plan));
      }
      trainMs += performance.now() - t0;
      busy.add(c);
      inFlight.push({ c, assignment, delta, n: c.n, metrics, due: submissions + Math.floor(delays() * (maxDelay + 1)), seq: seq++ });
      return true;
    }
  }

  while (reports.length < o.rounds) {
    while (inFlight.length < concurrency && (await launch()));
    if (inFlight.length === 0) throw new Error('fedbuff: no client can join the open buffer');
    let next = 0;
    for (let i = 1; i < inFlight.length; i++) {
      const a = inFlight[i]!,
        b = inFlight[next]!;
      if (a.due < b.due || (a.due === b.due && a.seq < b.seq)) next = i;
    }
    const job = inFlight.splice(next, 1)[0]!;
    submissions++;
    try {
      await job.c.client.submitUpdate({
        round: job.assignment.round,
        baseVersion: job.assignment.baseVersion,
        delta: job.delta,
        numExamples: job.n,
        metrics: job.metrics,
      });
      accepted++;
      inBuffer++;
      examples += job.n;
      const staleness = version - job.assignment.baseVersion;
      staleSum += staleness;
      staleMax = Math.max(staleMax, staleness);
      // One update per client per buffer: the aggregator's ledger is keyed by (buffer, client), and
      // its check-in does not yet refuse a client whose stale update landed in the open buffer (a
      // second submit then fails with 500), so the driver keeps such clients out until it publishes.
      blocked.add(job.c);
      o.onClient?.(reports.length + 1, inBuffer, bufferSize);
    } catch (e) {
      if (!(e instanceof LateUpdateError)) throw e;
      refused++; // stale_update: older than maxStaleness; the client drops it and checks in again
    } finally {
      busy.delete(job.c);
    }
    if (inBuffer < bufferSize) continue;
    // The buffer is full: the aggregator publishes the next version.
    version++;
    const before = traffic();
    const evalStarted = performance.now();
    const { accuracy, loss } = await evaluateAndRecord(admin, evaluator, taskId, version, testData);
    const evalMs = performance.now() - evalStarted;
    const report: RoundReport = {
      round: reports.length + 1,
      version,
      accuracy,
      loss,
      participants: inBuffer,
      examples,
      bytesUp: before.up - since.up,
      bytesDown: before.down - since.down,
      seconds: (performance.now() - started) / 1000,
      trainSeconds: trainMs / 1000,
      evalSeconds: evalMs / 1000,
      updates: accepted,
      refused,
      meanStaleness: staleSum / inBuffer,
      maxStaleness: staleMax,
    };
    reports.push(report);
    o.onRound?.(report);
    since = traffic();
    started = performance.now();
    trainMs = examples = staleSum = staleMax = inBuffer = 0;
    blocked = new Set();
    if (o.target !== undefined && accuracy >= o.target) {
      roundsToTarget = report.round;
      updatesToTarget = accepted;
      break;
    }
  }
  return { reports, roundsToTarget, updatesToTarget };
}

/** A poisoned Δ for a base (Gaussian noise, or the trained Δ boosted or sign-flipped). */
async function poison(
  c: VirtualClient,
  m: NonNullable<SimulationOptions['malicious']>,
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
async function attack(c: VirtualClient, m: NonNullable<SimulationOptions['malicious']>, seed: number): Promise<ParticipationResult> {
  const assignment = await c.client.waitForAssignment();
  const [task, weights] = await Promise.all([c.client.getTaskModel(), c.client.getWeights(assignment.baseVersion)]);
  const delta = await poison(c, m, seed, weights.flat, { modelTopology: task.modelTopology, tensors: weights.manifest.tensors }, assignment);
  const ack = await c.client.submitUpdate({ round: assignment.round, baseVersion: assignment.baseVersion, delta, numExamples: c.n });
  return { status: 'accepted', ack, assignment, train: { numExamples: c.n, metrics: {} } };
}

/** Honest local training of one virtual client from the given weights (the model is disposed). */
async function trainOn(
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

/** Waits for a published version, rebuilds it from its stored weights, and evaluates it. */
/**
 * Evaluates `version` on the held-out set and records the result as the version's server metrics
 * (shown beside federated evaluation); NaN, and nothing recorded, without a held-out set.
 */
async function evaluateAndRecord(
  admin: FedgeAdmin,
  evaluator: FedgeClient,
  taskId: string,
  version: number,
  testData: { xs: tf.Tensor; ys: tf.Tensor } | undefined,
): Promise<{ accuracy: number; loss: number }> {
  const result = testData ? await evaluateVersion(evaluator, version, testData) : { accuracy: NaN, loss: NaN };
  const measured = Object.fromEntries(Object.entries(result).filter(([, v]) => Number.isFinite(v)));
  if (Object.keys(measured).length > 0) await admin.setServerMetrics(taskId, version, measured);
  return result;
}

export async function evaluateVersion(
  client: FedgeClient,
  version: number,
  test: { xs: tf.Tensor; ys: tf.Tensor },
): Promise<{ accuracy: number; loss: number }> {
  for (let i = 0; ; i++) {
    const current = await client.getManifest('current');
    if (current.version >= version) break;
    if (i > 400) throw new Error(`version ${version} was not published`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const [task, weights] = await Promise.all([client.getTaskModel(), client.getWeights(version)]);
  const model = await buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
  try {
    // The task's own loss; accuracy where it means something (a cross-entropy loss: classes).
    const classes = /crossentropy/i.test(task.plan.loss);
    model.compile({ optimizer: 'sgd', loss: task.plan.loss, metrics: classes ? ['accuracy'] : [] });
    const [loss, acc] = [model.evaluate(test.xs, test.ys, { batchSize: 500 })].flat() as tf.Scalar[];
    const out = { loss: (await loss!.data())[0]!, accuracy: acc ? (await acc.data())[0]! : NaN };
    tf.dispose(acc ? [loss!, acc] : [loss!]);
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
