/**
 * @module The simulated-client runner: K virtual clients, each holding a partition of real MNIST
 * (or the user's own data), take part in federated training through the real SDK, over real HTTP,
 * against a real aggregator. A round's participations run in parallel on worker threads
 * (`threads`, pool.ts) or one after another in this thread. After each round the published version
 * is evaluated on a held-out test split (evaluate.ts).
 *
 * A `fedbuff` task has no synchronized rounds, so it gets an asynchronous driver instead: a pool of
 * `concurrency` virtual clients in flight, each checking in (and so training on whatever version is
 * current), then submitting after a seeded random number of other submissions, so updates arrive
 * 0..several versions stale, as FedBuff expects. Each published version is evaluated and reported.
 */
import * as tf from '@tensorflow/tfjs';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import type { PrivacyOptions, SecureAggregationOptions } from '../../client-sdk/src/admin-types.ts';
import { FedgeClient } from '../../client-sdk/src/client.ts';
import type { UpdateEncoding } from '../../client-sdk/src/protocol/encoding.ts';
import { rng } from '../shared/random.ts';
import { runAsync } from './async-driver.ts';
import { type DataSource, dataOf, type Job, type MaliciousOptions, type PartitionName, virtualClient } from './clients.ts';
import { poissonRound } from './dp-driver.ts';
import { evaluateAndRecord } from './evaluate.ts';
import { buildSimModel, type ModelName } from './models.ts';
import { permutation } from './partition.ts';
import { inProcessPool, type Pool, workerPool } from './pool.ts';
import { useWasmBackend } from './tf-backend.ts';
import type { UserData } from './user-data.ts';

export type { AttackName, PartitionName } from './clients.ts';
export { tensorsOf } from './clients.ts';
export { evaluateVersion } from './evaluate.ts';

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
  malicious?: MaliciousOptions;
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
  user?: { model: tf.io.ModelArtifacts; data: UserData; dataPath: string; clientsAsked?: number; label: string; learningRate?: number };
  /**
   * Worker threads that train a round's clients in parallel, each holding every client's data
   * (default 0: one after another in this thread). FedBuff's driver always runs in this thread.
   */
  threads?: number;
  /**
   * Differential privacy for the task. Central DP: the server samples each client with probability
   * `samplingRate` at check-in (so every client checks in every round and `fraction` is unused) and
   * each round closes at its deadline, `deadlineSeconds` (default 30) after its first draw.
   */
  privacy?: PrivacyOptions;
  /** Secure aggregation (SecAgg+) for the task: every round's clients run its phases together. */
  secureAggregation?: SecureAggregationOptions;
  /** How the clients encode their updates (default float32). */
  updateEncoding?: UpdateEncoding;
  deadlineSeconds?: number;
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
  /** Under DP: ε at δ spent up to this version (its manifest's record), and clients drawn and late (central DP). */
  epsilon?: number;
  sampled?: number;
  late?: number;
}

export interface SimulationResult {
  taskId: string;
  reports: RoundReport[];
  /** First round whose accuracy reached `target`, if any (FedBuff: the first version). */
  roundsToTarget: number | null;
  /** FedBuff only: updates accepted when `target` was first reached. */
  updatesToTarget?: number | null;
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

/** Where the clients' data comes from, as a worker thread can rebuild it. */
function sourceOf(o: SimulationOptions): DataSource {
  return o.user
    ? { kind: 'user', dataPath: o.user.dataPath, clients: o.user.clientsAsked, seed: o.seed }
    : { kind: 'mnist', model: o.model, partition: o.partition, alpha: o.alpha ?? 0.5, clients: o.clients, seed: o.seed, testSize: o.testSize ?? 2_000 };
}

async function run(o: SimulationOptions): Promise<SimulationResult> {
  await useWasmBackend();
  const data = o.user?.data ?? (await dataOf(sourceOf(o)));
  if (data.clients.length !== o.clients) throw new Error(`${o.clients} clients asked for, the data gave ${data.clients.length}`);
  const initial = o.user?.model ?? buildSimModel(o.model, o.seed);
  const label = o.user?.label ?? `${o.model} ${o.partition}`;
  const testData = data.test;
  const central = o.privacy?.mode === 'central' ? o.privacy : null;
  // Central DP: the expected number of participants, the fixed denominator of the noised mean.
  const perRound = Math.max(1, Math.round((central ? central.samplingRate : o.fraction) * o.clients));
  const largest = Math.max(...data.clients.map((c) => c.n));
  const batchSize = Number.isFinite(o.batchSize) ? o.batchSize : largest;

  const admin = new FedgeAdmin({ baseUrl: o.baseUrl, token: o.adminToken });
  const task = await admin.createTask(initial, {
    name: `sim ${label} K=${o.clients} C=${o.fraction} E=${o.epochs} B=${Number.isFinite(o.batchSize) ? o.batchSize : '∞'}`,
    rounds: central
      ? {
          clientsPerRound: perRound,
          // Secure aggregation needs 3 survivors at least (with 2, each would learn the other's update).
          minClients: o.secureAggregation ? 3 : 1,
          overSelection: 1,
          deadlineSeconds: o.deadlineSeconds ?? 30,
          maxExamplesPerClient: largest,
        }
      : { clientsPerRound: perRound, minClients: perRound, overSelection: 1, deadlineSeconds: 3_600, maxExamplesPerClient: largest },
    // The user's saved model brings its loss and optimizer (its training config); MNIST models train with SGD.
    plan: o.user
      ? { epochs: o.epochs, batchSize, ...(o.user.learningRate === undefined ? {} : { learningRate: o.user.learningRate }) }
      : { epochs: o.epochs, batchSize, learningRate: o.learningRate, optimizer: 'sgd', loss: 'categoricalCrossentropy' },
    ...(o.strategy ? { strategy: o.strategy } : {}),
    ...(o.privacy ? { privacy: o.privacy } : {}),
    ...(o.secureAggregation ? { secureAggregation: o.secureAggregation } : {}),
    ...(o.updateEncoding ? { updateEncoding: o.updateEncoding } : {}),
  });
  const attackers = new Set(permutation(o.clients, rng(o.seed ^ 0xbad)).slice(0, Math.round((o.malicious?.fraction ?? 0) * o.clients)));
  if (initial instanceof tf.LayersModel) initial.dispose();

  const tokens: string[] = [];
  for (let k = 0; k < o.clients; k++) tokens.push((await admin.registerClient(task.id, `virtual-${k}`)).token);
  const clients = data.clients.map((d, k) => virtualClient(k, o.baseUrl, task.id, tokens[k]!, d, attackers.has(k)));
  // Secure aggregation needs a round's clients alive at once: they run concurrently in this thread.
  const threaded = (o.threads ?? 0) > 0 && o.strategy?.name !== 'fedbuff' && !o.secureAggregation;
  const pool: Pool = threaded
    ? await workerPool(o.threads!, {
        baseUrl: o.baseUrl,
        taskId: task.id,
        tokens,
        malicious: clients.map((c) => c.malicious),
        examples: clients.map((c) => c.n),
        source: sourceOf(o),
      })
    : inProcessPool(clients, { concurrent: o.secureAggregation !== undefined });

  // The server-side evaluation has a client of its own: its downloads are not a virtual client's
  // traffic, nor warm a virtual client's version cache.
  const evaluator = new FedgeClient({ baseUrl: o.baseUrl, taskId: task.id, token: (await admin.registerClient(task.id, 'evaluator')).token });
  const pick = rng(o.seed ^ 0x5eed);
  const reports: RoundReport[] = [];
  let roundsToTarget: number | null = null;
  try {
    if (o.strategy?.name === 'fedbuff') return { taskId: task.id, ...(await runAsync(o, admin, task.id, clients, evaluator, testData, pick)) };
    for (let r = 1; r <= o.rounds; r++) {
      const started = performance.now();
      if (central) {
        const dp = await poissonRound(admin, task.id, clients, pool, o.seed, (done, of) => o.onClient?.(r, done, of));
        if (dp.version === null) continue; // nobody drawn, or every update late: the round was abandoned
        const evalStarted = performance.now();
        const { accuracy, loss } = await evaluateAndRecord(admin, evaluator, task.id, dp.version, testData);
        const accepted = dp.results.filter((x) => x.status === 'accepted');
        const report: RoundReport = {
          round: r,
          version: dp.version,
          accuracy,
          loss,
          participants: accepted.length,
          examples: accepted.reduce((a, x) => a + x.numExamples, 0),
          bytesUp: dp.results.reduce((a, x) => a + x.up, 0),
          bytesDown: dp.results.reduce((a, x) => a + x.down, 0),
          seconds: (performance.now() - started) / 1000,
          trainSeconds: dp.results.reduce((a, x) => a + x.trainMs, 0) / 1000,
          evalSeconds: (performance.now() - evalStarted) / 1000,
          epsilon: (await admin.getManifest(task.id, dp.version)).privacy?.epsilon ?? Number.NaN,
          sampled: dp.sampled,
          late: dp.results.length - accepted.length,
        };
        reports.push(report);
        o.onRound?.(report);
        if (o.target !== undefined && accuracy >= o.target) {
          roundsToTarget = r;
          break;
        }
        continue;
      }
      const chosen = sample(clients, perRound, pick);
      const jobs: Job[] = chosen.map((c) => ({ k: c.k, round: r, seed: o.seed, ...(o.malicious ? { malicious: o.malicious } : {}) }));
      const results = await pool.run(jobs, (done) => o.onClient?.(r, done, chosen.length));
      const late = results.find((x) => x.status !== 'accepted');
      if (late) throw new Error(`round ${r}: client ${late.k} was late`);
      const examples = results.reduce((a, x) => a + x.numExamples, 0);
      const trainMs = results.reduce((a, x) => a + x.trainMs, 0);
      const version = results[0]!.baseVersion + 1;
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
        bytesUp: results.reduce((a, x) => a + x.up, 0),
        bytesDown: results.reduce((a, x) => a + x.down, 0),
        seconds: (performance.now() - started) / 1000,
        trainSeconds: trainMs / 1000,
        evalSeconds: evalMs / 1000,
        ...(o.privacy ? { epsilon: (await admin.getManifest(task.id, version)).privacy?.epsilon ?? Number.NaN } : {}),
      };
      reports.push(report);
      o.onRound?.(report);
      if (o.target !== undefined && accuracy >= o.target) {
        roundsToTarget = r;
        break;
      }
    }
  } finally {
    await pool.close();
    for (const c of clients) tf.dispose([c.xs, c.ys]);
    if (testData) tf.dispose([testData.xs, testData.ys]);
  }
  return { taskId: task.id, reports, roundsToTarget };
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
