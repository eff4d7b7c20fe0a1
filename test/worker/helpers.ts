/** @module Helpers for the in-runtime tests: a tiny model, tasks, clients, updates, all over real HTTP routes. */
import { env, SELF } from 'cloudflare:test';
import { expect } from 'vitest';
import { clipToNorm } from '#protocol/dp.ts';
import { UPDATE_META } from '#protocol/messages.ts';
import { concatTensors, decodeTensors, encodeTensors, splitFlat, type WireTensor } from '#protocol/safetensors.ts';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';

export const ADMIN = { authorization: 'Bearer test-admin-token' };

/** A 4-3 dense layer: 12 + 3 parameters, the shapes a tfjs `dense` layer names. */
export const TENSORS = [
  { name: 'dense/kernel', shape: [4, 3] },
  { name: 'dense/bias', shape: [3] },
] as const;
export const NUM_PARAMS = 15;

export const TOPOLOGY = denseTopology(4, [{ name: 'dense', units: 3, activation: 'softmax' }]);

export function initialWeights(): Float32Array {
  return Float32Array.from({ length: NUM_PARAMS }, (_, i) => (i - 7) / 10);
}

export function split(flat: Float32Array): WireTensor[] {
  return splitFlat(TENSORS, flat);
}

export function base64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * This test file's source address: failed authentications are rate-limited per source, and the
 * limiter is shared by every file, so each file calls from an address of its own.
 */
export const SOURCE_IP = `10.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}`;

export function api(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
  return SELF.fetch(`https://fedge.test/v1${path}`, { ...init, headers: { 'cf-connecting-ip': SOURCE_IP, ...init.headers } });
}

export function adminJson(path: string, method: string, body?: unknown): Promise<Response> {
  return api(path, { method, headers: { ...ADMIN, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
}

export interface TaskOptions {
  clientsPerRound?: number;
  minClients?: number;
  deadlineSeconds?: number;
  overSelection?: number;
  maxExamplesPerClient?: number;
}

export async function createTask(opts: TaskOptions = {}, weights = initialWeights(), extra: Record<string, unknown> = {}): Promise<{ id: string; task: any }> {
  const res = await adminJson('/tasks', 'POST', {
    ...extra,
    name: 'tiny',
    modelTopology: TOPOLOGY,
    initialWeights: base64(encodeTensors(split(weights))),
    rounds: { clientsPerRound: 3, overSelection: 1, deadlineSeconds: 60, ...opts },
    plan: { epochs: 1, batchSize: 8, learningRate: 0.1 },
  });
  const task = await res.json<any>();
  if (res.status !== 201) throw new Error(`create task: ${res.status} ${JSON.stringify(task)}`);
  return { id: task.id, task };
}

export interface Client {
  clientId: string;
  token: string;
  auth: Record<string, string>;
}

export async function registerClient(taskId: string): Promise<Client> {
  const res = await adminJson(`/tasks/${taskId}/clients`, 'POST', {});
  const body = await res.json<any>();
  if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(body)}`);
  return { clientId: body.clientId, token: body.token, auth: { authorization: `Bearer ${body.token}` } };
}

export async function checkIn(taskId: string, client: Client): Promise<any> {
  const res = await api(`/tasks/${taskId}/checkin`, { method: 'POST', headers: client.auth });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json<any>() };
}

export function encodeUpdate(delta: Float32Array, meta: { baseVersion?: number | string; numExamples?: number | string; metrics?: unknown } = {}): Uint8Array {
  const metadata: Record<string, string> = {};
  if (meta.baseVersion !== undefined) metadata[UPDATE_META.baseVersion] = String(meta.baseVersion);
  if (meta.numExamples !== undefined) metadata[UPDATE_META.numExamples] = String(meta.numExamples);
  if (meta.metrics !== undefined) metadata[UPDATE_META.metrics] = JSON.stringify(meta.metrics);
  return encodeTensors(split(delta), metadata);
}

export async function submit(
  taskId: string,
  client: Client,
  round: number,
  body: Uint8Array | string,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await api(`/tasks/${taskId}/rounds/${round}/update`, {
    method: 'PUT',
    headers: { ...client.auth, 'content-type': 'application/octet-stream' },
    body,
  });
  return { status: res.status, body: await res.json<any>(), headers: res.headers };
}

export async function downloadWeights(taskId: string, version: number, auth: Record<string, string> = ADMIN): Promise<Float32Array> {
  const res = await api(`/tasks/${taskId}/models/${version}/weights`, { headers: auth });
  if (res.status !== 200) throw new Error(`weights: ${res.status} ${await res.text()}`);
  return concatTensors(decodeTensors(await res.arrayBuffer()).tensors);
}

export function stubOf(taskId: string) {
  return env.AGGREGATOR.get(env.AGGREGATOR.idFromName(taskId));
}

/** Deterministic pseudo-random deltas in [-scale, scale). */
export function randomDelta(seed: number, scale = 1): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: NUM_PARAMS }, () => (next() * 2 - 1) * scale);
}

/** The FedAvg reference, in float64, computed independently of the server's kernels. */
export function fedavgReference(base: Float32Array, updates: { delta: Float32Array; n: number }[]): Float64Array {
  const total = updates.reduce((a, u) => a + u.n, 0);
  return Float64Array.from(base, (b, i) => b + updates.reduce((a, u) => a + u.n * u.delta[i]!, 0) / total);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** base + the mean of the updates clipped to norm S (what central DP publishes before its noise), in float64. */
export function clippedMean(base: Float32Array, deltas: Float32Array[], S: number, m: number): Float64Array {
  const clipped = deltas.map((d) => {
    const c = d.slice();
    clipToNorm(c, S);
    return c;
  });
  return Float64Array.from(base, (b, i) => b + clipped.reduce((a, c) => a + c[i]!, 0) / m);
}

/**
 * Asserts that `published` − `expected` is Gaussian noise of scale `sigma` on the NUM_PARAMS
 * coordinates: each within 6σ, and Σ noise² / σ² (χ² with 15 degrees of freedom) within [1.5, 50]
 * (99.998%), so the noise is there, once, at its scale.
 */
export function expectNoise(published: Float32Array, expected: Float64Array, sigma: number): void {
  let sq = 0;
  for (let i = 0; i < NUM_PARAMS; i++) {
    const noise = published[i]! - expected[i]!;
    expect(Math.abs(noise)).toBeLessThan(6 * sigma);
    sq += noise * noise;
  }
  expect(sq / sigma ** 2).toBeGreaterThan(1.5);
  expect(sq / sigma ** 2).toBeLessThan(50);
}
