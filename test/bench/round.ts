/**
 * @module One federated round, end to end, and where its wall time goes: a local aggregator
 * (`wrangler dev`), a 2NN task (784-200-200-10, 199,210 parameters), 10 clients each holding 800
 * real MNIST training images (IID), E = 1, B = 10, SGD. Each round every client, one after the
 * other (as in the simulated-client suite: one process, one core for tfjs), checks in, downloads
 * the round's base version, builds the model, trains, and submits Δ; then the aggregator publishes
 * the next version. Round 1 is a warm-up (JIT, tfjs kernels, first task fetch) and is excluded.
 *
 *   npm run bench:round -- [--rounds 5] [--clients 10] [--examples 800] [--epochs 1] [--batch 10]
 *                          [--lr 0.1] [--seed 1] [--no-eval] [--poll-ms 5]
 *
 * Phases, per round (sums over its clients, except aggregation):
 * - checkin:   `waitForAssignment` (one POST round trip when the round is open);
 * - download:  `getWeights(baseVersion)`: manifest + weights GET, SHA-256 check, decode;
 * - build:     `buildModel` (tfjs model from the task's topology, weights set);
 * - train:     `trainLocally` (compile, `fit`, read back the weights, Δ = trained − base);
 * - encode:    `encodeTensors` of the same Δ with the same metadata, called here on its own (the
 *              round clock is paused for this extra call); `submitUpdate` encodes once more inside;
 * - submit:    `submitUpdate` minus encode: the PUT round trip, acknowledged once durable;
 * - aggregate: from the last acknowledged submit until `models/current` shows the new version
 *              (polled every --poll-ms): alarm, finalize, blob to R2, D1 rows, next round opened;
 * - other:     the remainder (driver loop, disposal, timers).
 * Evaluation of the new version on the 2,000 held-out images is timed separately, outside the round,
 * by an extra registered client that never checks in (so it warms no participant's cache).
 * For check-in, download and submit, the share spent inside the server is read from wrangler's own
 * request log (each line carries the request's duration); marker requests delimit each round.
 *
 * Prints one JSON line per round and a summary line, then a table of the measured rounds (median
 * and mean) with each phase's share, and the platform's share: everything but `train`. Results and
 * the analysis: test/bench/README.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { UPDATE_META } from '#protocol/messages.ts';
import { encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import { FedgeClient } from '../../client-sdk/src/client.ts';
import { buildModel, trainLocally } from '../../client-sdk/src/training.ts';
import { loadMnistT10k, splitTrainTest, subset } from '../sim/mnist.ts';
import { buildSimModel } from '../sim/models.ts';
import { iid } from '../sim/partition.ts';
import { evaluateVersion, tensorsOf } from '../sim/runner.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '10' },
    examples: { type: 'string', default: '800' },
    epochs: { type: 'string', default: '1' },
    batch: { type: 'string', default: '10' },
    lr: { type: 'string', default: '0.1' },
    seed: { type: 'string', default: '1' },
    'poll-ms': { type: 'string', default: '5' },
    'no-eval': { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(args.rounds);
const K = Number(args.clients);
const N = Number(args.examples);
const SEED = Number(args.seed);
const POLL_MS = Number(args['poll-ms']);
const plan = {
  epochs: Number(args.epochs),
  batchSize: Number(args.batch),
  learningRate: Number(args.lr),
  optimizer: 'sgd',
  loss: 'categoricalCrossentropy',
} as const;
if (K * N > 8_000) throw new Error(`--clients × --examples must be at most 8,000 (the training split), got ${K * N}`);
const emit = (o: Record<string, unknown>) => console.log(JSON.stringify(o));

const PHASES = ['checkin', 'download', 'build', 'train', 'encode', 'submit', 'aggregate', 'other'] as const;
type Phase = (typeof PHASES)[number];
type Times = Record<Phase, number>;
const zero = (): Times => Object.fromEntries(PHASES.map((p) => [p, 0])) as Times;

const backend = await useWasmBackend();
const { train, test } = splitTrainTest(loadMnistT10k(), 2_000, SEED);
const parts = iid(train.labels, Math.floor(8_000 / N), SEED)
  .slice(0, K)
  .map((p) => p.slice(0, N));
const testData = tensorsOf(test, [784]);

// Server-side durations: wrangler dev logs each request as it completes, e.g.
// "[wrangler:info] PUT /v1/tasks/<id>/rounds/3/update 200 OK (48ms)". A round's requests are the
// lines between two marker requests (GET /v1/bench-mark/start-<r> and .../end-<r>, answered 404).
type ServerPhase = 'checkin' | 'download' | 'submit';
const serverMs = new Map<number, Record<ServerPhase, number[]>>();
const marksSeen = new Set<string>();
let logRound: number | null = null;
let partial = '';
function onServerOutput(text: string): void {
  partial += text;
  const lines = partial.split('\n');
  partial = lines.pop() ?? '';
  for (const line of lines) {
    const m = line.match(/\[wrangler:info\] (GET|POST|PUT) (\S+) \d{3} .*\((\d+)ms\)/);
    if (!m) continue;
    const [, method, path, ms] = m as unknown as [string, string, string, string];
    const mark = path.match(/\/v1\/bench-mark\/(start|end)-(\d+)$/);
    if (mark) {
      marksSeen.add(`${mark[1]}-${mark[2]}`);
      logRound = mark[1] === 'start' ? Number(mark[2]) : null;
      continue;
    }
    if (logRound === null) continue;
    const phase: ServerPhase | null =
      method === 'POST' && path.endsWith('/checkin')
        ? 'checkin'
        : method === 'GET' && /\/models\/\d+(\/weights)?$/.test(path)
          ? 'download'
          : method === 'PUT'
            ? 'submit'
            : null;
    if (!phase) continue;
    if (!serverMs.has(logRound)) serverMs.set(logRound, { checkin: [], download: [], submit: [] });
    serverMs.get(logRound)![phase].push(Number(ms));
  }
}

const stateDir = mkdtempSync(join(tmpdir(), 'fedge-bench-round-'));
const server = await startLocalServer({ port: await findFreePort(), stateDir, adminToken: 'bench-admin', onOutput: onServerOutput });
async function mark(name: string): Promise<void> {
  await (await fetch(`${server.url}/v1/bench-mark/${name}`)).arrayBuffer();
  for (let i = 0; i < 400 && !marksSeen.has(name); i++) await new Promise((res) => setTimeout(res, 5));
  if (!marksSeen.has(name)) throw new Error(`wrangler did not log the marker request ${name}`);
}
emit({ name: 'server', startupMs: server.startupMs, url: server.url, tfBackend: backend });

const clients: { client: FedgeClient; xs: tf.Tensor; ys: tf.Tensor }[] = [];
try {
  const admin = new FedgeAdmin({ baseUrl: server.url, token: server.adminToken });
  const initial = buildSimModel('2nn', SEED);
  const numParams = initial.countParams();
  const task = await admin.createTask(initial, {
    name: 'round bench 2nn',
    rounds: { clientsPerRound: K, minClients: K, overSelection: 1, deadlineSeconds: 3_600, maxExamplesPerClient: N },
    plan,
  });
  initial.dispose();
  for (let k = 0; k < K; k++) {
    const creds = await admin.registerClient(task.id, `bench-${k}`);
    const client = new FedgeClient({ baseUrl: server.url, taskId: task.id, token: creds.token });
    const { xs, ys } = tensorsOf(subset(train, parts[k]!), [784]);
    clients.push({ client, xs, ys });
  }
  const api = `${server.url}/v1/tasks/${task.id}`;
  const adminHeaders = { authorization: `Bearer ${server.adminToken}` };
  // Evaluation uses a client of its own, which never checks in: its downloads must not warm a participant's cache.
  const evaluator = new FedgeClient({ baseUrl: server.url, taskId: task.id, token: (await admin.registerClient(task.id, 'evaluator')).token });
  const currentVersion = async () => ((await (await fetch(`${api}/models/current`, { headers: adminHeaders })).json()) as { version: number }).version;

  const measured: { wall: number; t: Times; server: Record<ServerPhase, number> }[] = [];
  for (let r = 1; r <= ROUNDS + 1; r++) {
    await mark(`start-${r}`);
    const t = zero();
    let paused = 0; // ms spent in the extra encode call, taken off the round clock
    let bodyBytes = 0;
    const started = performance.now();
    let lastAck = 0;
    let version = -1;
    for (const c of clients) {
      let t0 = performance.now();
      const assignment = await c.client.waitForAssignment();
      t.checkin += performance.now() - t0;
      t0 = performance.now();
      const [taskModel, weights] = await Promise.all([c.client.getTaskModel(), c.client.getWeights(assignment.baseVersion)]);
      t.download += performance.now() - t0;
      t0 = performance.now();
      const model = await buildModel(taskModel.modelTopology, weights.manifest.tensors, weights.flat);
      t.build += performance.now() - t0;
      t0 = performance.now();
      let trained: Awaited<ReturnType<typeof trainLocally>>;
      try {
        trained = await trainLocally(model, weights.flat, { xs: c.xs, ys: c.ys }, assignment.plan);
      } finally {
        model.dispose();
      }
      t.train += performance.now() - t0;
      // The same encoding submitUpdate does (Δ split by the manifest, same metadata), timed on its own.
      t0 = performance.now();
      const metadata: Record<string, string> = {
        [UPDATE_META.baseVersion]: String(assignment.baseVersion),
        [UPDATE_META.numExamples]: String(trained.numExamples),
      };
      if (Object.keys(trained.metrics).length > 0) metadata[UPDATE_META.metrics] = JSON.stringify(trained.metrics);
      const body = encodeTensors(splitFlat(weights.manifest.tensors, trained.delta), metadata);
      const encodeMs = performance.now() - t0;
      bodyBytes = body.byteLength;
      t.encode += encodeMs;
      paused += encodeMs;
      t0 = performance.now();
      await c.client.submitUpdate({
        round: assignment.round,
        baseVersion: assignment.baseVersion,
        delta: trained.delta,
        numExamples: trained.numExamples,
        metrics: trained.metrics,
      });
      lastAck = performance.now();
      t.submit += lastAck - t0 - encodeMs;
      version = assignment.baseVersion + 1;
    }
    while ((await currentVersion()) < version) await new Promise((res) => setTimeout(res, POLL_MS));
    const published = performance.now();
    t.aggregate = published - lastAck;
    const wall = published - started - paused;
    // submitUpdate's own encode is counted once, as `encode` (submit = submitUpdate − encode).
    t.other = wall - PHASES.filter((p) => p !== 'other').reduce((a, p) => a + t[p], 0);
    await mark(`end-${r}`);
    const logged = serverMs.get(r) ?? { checkin: [], download: [], submit: [] };
    const server_ = { checkin: sum(logged.checkin), download: sum(logged.download), submit: sum(logged.submit) };
    const requests = { checkin: logged.checkin.length, download: logged.download.length, submit: logged.submit.length };
    let evalMs: number | undefined;
    let accuracy: number | undefined;
    if (!args['no-eval']) {
      const e0 = performance.now();
      accuracy = (await evaluateVersion(evaluator, version, testData)).accuracy;
      evalMs = performance.now() - e0;
    }
    const warmup = r === 1;
    if (!warmup) measured.push({ wall, t, server: server_ });
    emit({
      name: 'round',
      round: r,
      warmup,
      version,
      wallMs: round1(wall),
      ...Object.fromEntries(PHASES.map((p) => [`${p}Ms`, round1(t[p])])),
      platformShare: round3((wall - t.train) / wall),
      serverMs: server_,
      serverRequests: requests,
      bodyBytes,
      ...(evalMs !== undefined ? { evalMs: round1(evalMs), accuracy } : {}),
    });
  }

  // For scale: the floor of one HTTP round trip through `wrangler dev` (GET /v1/health, no auth, no storage).
  const floor: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    await (await fetch(`${server.url}/v1/health`)).arrayBuffer();
    floor.push(performance.now() - t0);
  }

  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const walls = measured.map((m) => m.wall);
  const meanWall = mean(walls);
  const per = Object.fromEntries(PHASES.map((p) => [p, { median: median(measured.map((m) => m.t[p])), mean: mean(measured.map((m) => m.t[p])) }])) as Record<
    Phase,
    { median: number; mean: number }
  >;
  const platform = measured.map((m) => (m.wall - m.t.train) / m.wall);
  const summary = {
    name: 'round-summary',
    clients: K,
    examplesPerClient: N,
    params: numParams,
    ...plan,
    roundsMeasured: measured.length,
    wallMs: { median: round1(median(walls)), mean: round1(meanWall), min: round1(Math.min(...walls)), max: round1(Math.max(...walls)) },
    phasesMsMean: Object.fromEntries(PHASES.map((p) => [p, round1(per[p].mean)])),
    platformShare: { median: round3(median(platform)), mean: round3(mean(platform)), max: round3(Math.max(...platform)) },
    serverMsMean: {
      checkin: round1(mean(measured.map((m) => m.server.checkin))),
      download: round1(mean(measured.map((m) => m.server.download))),
      submit: round1(mean(measured.map((m) => m.server.submit))),
    },
    healthRoundTripMs: { median: round1(median(floor)), min: round1(Math.min(...floor)) },
  };
  emit(summary);

  console.log(
    `\none round: ${K} clients × ${N} MNIST images, 2NN (${numParams.toLocaleString('en')} params), E=${plan.epochs} B=${plan.batchSize}; ${measured.length} rounds after a warm-up`,
  );
  const line = (cells: (string | number)[]) =>
    `${String(cells[0]).padEnd(10)}${cells
      .slice(1)
      .map((c) => String(c).padStart(11))
      .join('')}`;
  console.log(line(['phase', 'median ms', 'mean ms', 'per client', 'share', 'in server']));
  console.log('-'.repeat(65));
  for (const p of PHASES) {
    const perClient = p === 'aggregate' || p === 'other' ? '' : (per[p].mean / K).toFixed(1);
    const inServer = p === 'checkin' || p === 'download' || p === 'submit' ? mean(measured.map((m) => m.server[p])).toFixed(1) : p === 'aggregate' ? 'all' : '';
    console.log(line([p, per[p].median.toFixed(1), per[p].mean.toFixed(1), perClient, `${((100 * per[p].mean) / meanWall).toFixed(1)}%`, inServer]));
  }
  console.log('-'.repeat(65));
  console.log(line(['round', median(walls).toFixed(1), meanWall.toFixed(1), '', '100.0%']));
  console.log(
    `"in server": mean ms per round from wrangler's own request log (proxy in to response out), the rest of a phase is client side (HTTP client, SHA-256 check, decode)`,
  );
  console.log(
    `HTTP floor (GET /v1/health through wrangler dev): median ${median(floor).toFixed(1)} ms; each client makes 4 requests a round (check-in, manifest, weights, submit)`,
  );
  console.log(
    `platform share (everything but train): median ${(100 * median(platform)).toFixed(1)}%, mean ${(100 * mean(platform)).toFixed(1)}%, max ${(100 * Math.max(...platform)).toFixed(1)}% (goal < 10%)`,
  );
} finally {
  for (const c of clients) tf.dispose([c.xs, c.ys]);
  tf.dispose([testData.xs, testData.ys]);
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
