/**
 * The aggregator's behaviour fingerprint: fixed-seed rounds through the real Durable Object for
 * every strategy, and the SHA-256 of each published version's weights (the float32 values only:
 * the blob's metadata names the task, whose id is random). A refactoring must leave every hash as
 * it is (`fingerprint.json`); a deliberate change of behaviour updates the file in its own commit.
 */
import { runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { UPDATE_META } from '#protocol/messages.ts';
import { encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import expected from './fingerprint.json';
import { adminJson, api, base64, type Client, checkIn, downloadWeights, registerClient, stubOf } from './helpers.ts';

/** 300 × 500 + 500 = 150,500 parameters: three of the robust strategies' 64K-parameter ranges. */
const TENSORS = [
  { name: 'dense/kernel', shape: [300, 500] },
  { name: 'dense/bias', shape: [500] },
];
const N = 150_500;
const CLIENTS = 6;

function seeded(seed: number, scale: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: N }, () => (next() * 2 - 1) * scale);
}

/** Client c's update in round r: a Δ of its own (client 5 an outlier, for the robust rules) and an example count. */
function update(c: number, r: number, baseVersion: number): Uint8Array {
  const delta = seeded(1_000 * c + r, c === 5 ? 0.5 : 0.02);
  return encodeTensors(splitFlat(TENSORS, delta), { [UPDATE_META.baseVersion]: String(baseVersion), [UPDATE_META.numExamples]: String(1 + ((c * 3 + r) % 7)) });
}

async function put(taskId: string, c: Client, round: number, body: Uint8Array): Promise<void> {
  const res = await api(`/tasks/${taskId}/rounds/${round}/update`, { method: 'PUT', headers: { ...c.auth, 'content-type': 'application/octet-stream' }, body });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function weightsHash(taskId: string, version: number): Promise<string> {
  const w = await downloadWeights(taskId, version);
  const digest = await crypto.subtle.digest('SHA-256', w);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function createTask(strategy: Record<string, unknown>): Promise<{ id: string; clients: Client[] }> {
  const res = await adminJson('/tasks', 'POST', {
    name: 'fingerprint',
    modelTopology: denseTopology(300, [{ name: 'dense', units: 500 }]),
    initialWeights: base64(encodeTensors(splitFlat(TENSORS, seeded(1, 0.1)))),
    rounds: { clientsPerRound: CLIENTS, overSelection: 1, deadlineSeconds: 600, maxExamplesPerClient: 100 },
    strategy,
  });
  const task = await res.json<any>();
  expect(res.status, JSON.stringify(task)).toBe(201);
  const clients: Client[] = [];
  for (let c = 0; c < CLIENTS; c++) clients.push(await registerClient(task.id));
  return { id: task.id, clients };
}

/** Three synchronous rounds: every client checks in and submits, the goal closes the round. */
async function synchronous(strategy: Record<string, unknown>): Promise<string[]> {
  const { id, clients } = await createTask(strategy);
  for (let r = 1; r <= 3; r++) {
    for (const c of clients) expect((await checkIn(id, c)).body).toMatchObject({ status: 'assigned', round: r, baseVersion: r - 1 });
    for (let c = 0; c < CLIENTS; c++) await put(id, clients[c]!, r, update(c, r, r - 1));
    await runDurableObjectAlarm(stubOf(id));
  }
  return Promise.all([1, 2, 3].map((v) => weightsHash(id, v)));
}

/** FedBuff, buffers of 3, with updates 0, 1 and 2 versions stale. */
async function fedbuff(): Promise<string[]> {
  const { id, clients: cl } = await createTask({ name: 'fedbuff', bufferSize: 3, stalenessExponent: 0.5, maxStaleness: 2 });
  for (const c of cl) expect((await checkIn(id, c)).body).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0 });
  for (const c of [0, 1, 2]) await put(id, cl[c]!, 1, update(c, 1, 0));
  await runDurableObjectAlarm(stubOf(id)); // version 1
  await put(id, cl[3]!, 1, update(3, 1, 0)); // one version stale
  await put(id, cl[4]!, 1, update(4, 1, 0));
  expect((await checkIn(id, cl[0]!)).body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
  await put(id, cl[0]!, 2, update(0, 2, 1));
  await runDurableObjectAlarm(stubOf(id)); // version 2
  await put(id, cl[5]!, 1, update(5, 1, 0)); // two versions stale
  for (const c of [1, 2]) {
    expect((await checkIn(id, cl[c]!)).body).toMatchObject({ status: 'assigned', round: 3, baseVersion: 2 });
    await put(id, cl[c]!, 3, update(c, 3, 2));
  }
  await runDurableObjectAlarm(stubOf(id)); // version 3
  return Promise.all([1, 2, 3].map((v) => weightsHash(id, v)));
}

const CASES: [string, () => Promise<string[]>][] = [
  ['fedavg', () => synchronous({ name: 'fedavg' })],
  ['fedprox', () => synchronous({ name: 'fedprox', mu: 0.01 })],
  ['fedavgm', () => synchronous({ name: 'fedavgm', serverLearningRate: 1, momentum: 0.9 })],
  ['fedadam', () => synchronous({ name: 'fedadam', serverLearningRate: 0.05 })],
  ['fedyogi', () => synchronous({ name: 'fedyogi', serverLearningRate: 0.05 })],
  ['fedadagrad', () => synchronous({ name: 'fedadagrad', serverLearningRate: 0.05 })],
  ['norm bounding (fedavg, clipNorm 2)', () => synchronous({ name: 'fedavg', clipNorm: 2 })],
  ['median', () => synchronous({ name: 'median' })],
  ['trimmed mean (beta 0.2)', () => synchronous({ name: 'trimmedmean', beta: 0.2 })],
  ['krum (f 1)', () => synchronous({ name: 'krum', f: 1, m: 1 })],
  ['multi-krum (f 1, m 3)', () => synchronous({ name: 'krum', f: 1, m: 3 })],
  ['multi-krum (f 1, m 3, weighting by examples)', () => synchronous({ name: 'krum', f: 1, m: 3, weighting: 'examples' })],
  ['trimmed mean (f 1)', () => synchronous({ name: 'trimmedmean', f: 1 })],
  ['fedbuff (K 3, staleness 0-2)', fedbuff],
];

describe('behaviour fingerprint: SHA-256 of versions 1-3 per strategy', () => {
  it.each(CASES)(
    '%s',
    async (name, run) => {
      const hashes = await run();
      // A missing entry fails with the value to commit.
      expect({ [name]: hashes }).toEqual({ [name]: (expected as Record<string, string[]>)[name] });
    },
    60_000,
  );
});
