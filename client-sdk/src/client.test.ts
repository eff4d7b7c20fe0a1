/**
 * The SDK against the real aggregator (wrangler dev, started by test/node/global-setup.ts) with
 * real tfjs training. Fault injection through the SDK's `fetch` option only.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { argmaxData } from '../../test/sim/synthetic.ts';
import { useWasmBackend } from '../../test/sim/tf-backend.ts';
import {
  APITimeoutError,
  AuthenticationError,
  FedgeAdmin,
  FedgeClient,
  FedgeError,
  LateUpdateError,
  NotFoundError,
  PermissionDeniedError,
  ValidationError,
  WireFormatError,
} from './index.ts';
import { UPDATE_META } from './protocol/messages.ts';
import { concatTensors, decodeTensors } from './protocol/safetensors.ts';
import { buildModel, trainLocally } from './training.ts';

const url = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: url, token: inject('fedgeAdminToken') });

const data = argmaxData;

/** Blocks this thread (the aggregator runs in its own process): `onStep` callbacks are synchronous. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function tinyModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
}

async function newTask(rounds: Record<string, number> = {}) {
  const model = tinyModel();
  const task = await admin.createTask(model, {
    name: 'sdk test',
    rounds: { clientsPerRound: 2, overSelection: 1, deadlineSeconds: 120, ...rounds },
    plan: { epochs: 2, batchSize: 8, learningRate: 0.2 },
  });
  model.dispose();
  return task;
}

async function newClient(taskId: string, extra: Partial<ConstructorParameters<typeof FedgeClient>[0]> = {}) {
  const creds = await admin.registerClient(taskId);
  return new FedgeClient({ baseUrl: url, taskId, token: creds.token, ...extra });
}

beforeAll(async () => {
  expect(await useWasmBackend()).toBe('wasm');
});

describe('FedgeClient against the real aggregator', () => {
  it('runs each step on its own; the published version is the example-weighted average of the clients’ Δ', async () => {
    const task = await newTask();
    const clients = [await newClient(task.id), await newClient(task.id)];
    const base = (await clients[0]!.getWeights(0)).flat;
    const deltas: { delta: Float32Array; n: number }[] = [];
    for (const [i, c] of clients.entries()) {
      const assignment = await c.waitForAssignment();
      expect(assignment).toMatchObject({
        round: 1,
        baseVersion: 0,
        plan: { epochs: 2, batchSize: 8, learningRate: 0.2, optimizer: 'sgd', loss: 'categoricalCrossentropy' },
      });
      const { flat, manifest } = await c.getWeights(assignment.baseVersion);
      const { modelTopology } = await c.getTaskModel();
      const model = await buildModel(modelTopology, manifest.tensors, flat);
      const { xs, ys } = data(40 + 20 * i, i + 1);
      const trained = await trainLocally(model, flat, { xs, ys }, assignment.plan);
      tf.dispose([xs, ys]);
      model.dispose();
      expect(trained.numExamples).toBe(40 + 20 * i);
      expect(Object.keys(trained.metrics).sort()).toEqual(['accuracy', 'loss']);
      deltas.push({ delta: trained.delta, n: trained.numExamples });
      const ack = await c.submitUpdate({ round: 1, baseVersion: 0, delta: trained.delta, numExamples: trained.numExamples, metrics: trained.metrics });
      expect(ack).toMatchObject({ round: 1, seq: i + 1, numExamples: 40 + 20 * i });
    }
    const v1 = await waitForVersion(clients[0]!, 1);
    const total = deltas.reduce((a, d) => a + d.n, 0);
    const expected = Float64Array.from(base, (b, i) => b + deltas.reduce((a, d) => a + d.n * d.delta[i]!, 0) / total);
    expect(maxAbsDiff(v1, expected)).toBeLessThanOrEqual(1e-6);
  });

  it('participates in one call, downloads an unchanged version once, and leaks no tensors', async () => {
    const task = await newTask({ clientsPerRound: 1 });
    const calls: string[] = [];
    const client = await newClient(task.id, {
      fetch: (input, init) => {
        calls.push(`${init?.method ?? 'GET'} ${String(input).replace(/^.*\/v1/, '')}`);
        return fetch(input, init);
      },
    });
    const { xs, ys } = data(64, 7);
    await client.getWeights(0); // warm the cache, as an app that checked the model earlier would
    const before = tf.memory().numTensors;
    const steps: string[] = [];
    const result = await client.participate({ xs, ys }, { onStep: (s) => steps.push(s), onEpochEnd: ({ epoch }) => void steps.push(`epoch ${epoch}`) });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([xs, ys]);
    expect(result.status).toBe('accepted');
    expect(steps).toEqual(['checking_in', 'downloading', 'training', 'epoch 0', 'epoch 1', 'submitting']);
    expect(calls.filter((c) => c.includes('/weights'))).toHaveLength(1);
    expect(calls.filter((c) => c.startsWith('GET') && /\/models\/0$/.test(c))).toHaveLength(1);
    const model = await client.downloadModel('current');
    expect(model.weights.map((w) => w.shape)).toEqual([[4, 8], [8], [8, 3], [3]]);
    model.dispose();
  });

  it('trains on a batched tf.data.Dataset and counts its examples', async () => {
    const task = await newTask({ clientsPerRound: 1 });
    const client = await newClient(task.id);
    const { xs, ys } = data(50, 3);
    const ds = tf.data.zip({ xs: tf.data.array(tf.unstack(xs)), ys: tf.data.array(tf.unstack(ys)) }).batch(8);
    const result = await client.participate(ds as unknown as tf.data.Dataset<tf.TensorContainer>);
    tf.dispose([xs, ys]);
    expect(result.status).toBe('accepted');
    expect(result.train.numExamples).toBe(50);
    if (result.status === 'accepted') expect(result.ack.numExamples).toBe(50);
  });

  it('sends only the model’s tensors and declared metadata: no training example leaves the client', async () => {
    const task = await newTask({ clientsPerRound: 1 });
    const bodies: { path: string; body: Uint8Array }[] = [];
    const client = await newClient(task.id, {
      fetch: async (input, init) => {
        const body = init?.body;
        bodies.push({ path: String(input), body: body instanceof Uint8Array ? body : new TextEncoder().encode(typeof body === 'string' ? body : '') });
        return fetch(input, init);
      },
    });
    const { xs, ys, raw } = data(128, 99);
    const result = await client.participate({ xs, ys });
    tf.dispose([xs, ys]);
    expect(result.status).toBe('accepted');
    const withBody = bodies.filter((b) => b.body.byteLength > 0);
    expect(withBody.map((b) => b.path.replace(/^.*\/v1/, ''))).toEqual([`/tasks/${task.id}/rounds/1/update`]);
    const { tensors, metadata } = decodeTensors(withBody[0]!.body);
    const manifest = await client.getManifest(0);
    expect(tensors.map((t) => [t.name, t.shape])).toEqual(manifest.tensors.map((t) => [t.name, t.shape]));
    expect(Object.keys(metadata).sort()).toEqual([UPDATE_META.baseVersion, UPDATE_META.metrics, UPDATE_META.numExamples].sort());
    expect(Object.keys(JSON.parse(metadata[UPDATE_META.metrics]!)).sort()).toEqual(['accuracy', 'loss']);
    expect(concatTensors(tensors).length * 4 + 8).toBeLessThan(withBody[0]!.body.byteLength);
    // No 8-byte window of any example (two float32 features) appears in anything sent.
    const sent = Buffer.concat(bodies.map((b) => b.body));
    const rawBytes = new Uint8Array(raw.buffer);
    for (let i = 0; i + 8 <= rawBytes.length; i += 8) expect(sent.indexOf(rawBytes.subarray(i, i + 8))).toBe(-1);
  });
});

describe('FedProx (Li et al. 2020) in the local training loop', () => {
  it('receives μ in the plan, pulls the local model toward the global one, and leaks no tensors', async () => {
    const model = tinyModel();
    const task = await admin.createTask(model, {
      name: 'fedprox',
      rounds: { clientsPerRound: 1 },
      plan: { epochs: 3, batchSize: 8, learningRate: 0.5 },
      strategy: { name: 'fedprox', mu: 1 },
    });
    model.dispose();
    const client = await newClient(task.id);
    const assignment = await client.waitForAssignment();
    expect(assignment.plan.proximalMu).toBe(1);
    const { flat, manifest } = await client.getWeights(0);
    const { modelTopology } = await client.getTaskModel();
    const { xs, ys } = data(96, 5);
    const norm = (d: Float32Array) => Math.sqrt(d.reduce((a, x) => a + x * x, 0));
    const run = async (mu: number) => {
      const m = await buildModel(modelTopology, manifest.tensors, flat);
      const before = tf.memory().numTensors;
      const r = await trainLocally(m, flat, { xs, ys }, { ...assignment.plan, proximalMu: mu });
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
      return r;
    };
    const loose = await run(1e-9); // the proximal loop with a negligible term: plain mini-batch SGD
    const tight = await run(1); // lr·μ = 0.5: each step moves w halfway back toward w_global
    tf.dispose([xs, ys]);
    expect(loose.numExamples).toBe(96);
    expect(Object.keys(tight.metrics).sort()).toEqual(['accuracy', 'loss']);
    expect(norm(tight.delta)).toBeLessThan(0.5 * norm(loose.delta));
    const ack = await client.submitUpdate({ round: 1, baseVersion: 0, delta: tight.delta, numExamples: tight.numExamples, metrics: tight.metrics });
    expect(ack.seq).toBe(1);
    const v1 = await waitForVersion(client, 1);
    expect(
      maxAbsDiff(
        v1,
        Float64Array.from(flat, (w, i) => w + tight.delta[i]!),
      ),
    ).toBeLessThanOrEqual(1e-6);
    expect((await client.getManifest(1)).strategy).toEqual({ name: 'fedprox', params: { mu: 1 } });
  });
});

describe('asynchronous tasks (FedBuff)', () => {
  it('work with the SDK unchanged: a client that trained on an older version is still counted', async () => {
    const model = tinyModel();
    const task = await admin.createTask(model, {
      name: 'fedbuff',
      plan: { epochs: 1, batchSize: 8, learningRate: 0.2 },
      strategy: { name: 'fedbuff', bufferSize: 1, maxStaleness: 2 },
    });
    model.dispose();
    const [slow, fast] = [await newClient(task.id), await newClient(task.id)];
    const assignment = await slow.waitForAssignment(); // round 1, version 0
    const d = data(32, 21);
    const quick = await fast.participate(d); // fills buffer 1: version 1
    expect(quick.status).toBe('accepted');
    const { flat, manifest } = await slow.getWeights(assignment.baseVersion);
    const m = await buildModel((await slow.getTaskModel()).modelTopology, manifest.tensors, flat);
    const trained = await trainLocally(m, flat, d, assignment.plan);
    m.dispose();
    tf.dispose([d.xs, d.ys]);
    const ack = await slow.submitUpdate({
      round: assignment.round,
      baseVersion: assignment.baseVersion,
      delta: trained.delta,
      numExamples: trained.numExamples,
    });
    expect(ack.round).toBe(1);
    await waitForVersion(slow, 2); // the stale update filled buffer 2
    expect((await admin.getManifest(task.id, 2)).parentVersion).toBe(1);
  });
});

describe('federated evaluation', () => {
  it('evaluates a version on local data and reports only the count and metrics, which the server averages', async () => {
    const task = await newTask();
    const [a, b] = [await newClient(task.id), await newClient(task.id)];
    // Only clients that take part may report: both hold an assignment in round 1 (base version 0).
    await a.waitForAssignment();
    await b.waitForAssignment();
    const da = data(40, 11);
    const db = data(120, 12);
    const before = tf.memory().numTensors;
    const ra = await a.evaluate(0, da);
    expect(tf.memory().numTensors).toBe(before);
    const rb = await b.evaluate('current', db);
    tf.dispose([da.xs, da.ys, db.xs, db.ys]);
    expect(ra).toMatchObject({ version: 0, numExamples: 40 });
    expect(Object.keys(ra.metrics).sort()).toEqual(['accuracy', 'loss']);
    // The same model evaluated by tfjs's own evaluate() gives the same accuracy.
    const model = await a.downloadModel(0);
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const check = data(40, 11);
    const [, acc] = model.evaluate(check.xs, check.ys) as tf.Scalar[];
    expect(ra.metrics.accuracy).toBeCloseTo((await acc!.data())[0]!, 6);
    tf.dispose([check.xs, check.ys]);
    model.dispose();
    const m = await admin.getManifest(task.id, 0);
    expect(m.federatedEvaluation!.numExamples).toBe(160);
    expect(m.federatedEvaluation!.metrics.accuracy).toBeCloseTo((ra.metrics.accuracy! * 40 + rb.metrics.accuracy! * 120) / 160, 9);
  });
});

describe('errors and retries', () => {
  it('maps server errors to typed errors with the server’s code', async () => {
    const task = await newTask();
    const wrong = new FedgeClient({ baseUrl: url, taskId: task.id, token: 'c_nobody.secret' });
    await expect(wrong.checkIn()).rejects.toMatchObject({ name: 'AuthenticationError', status: 401, code: 'unauthorized' });
    await expect(wrong.checkIn()).rejects.toBeInstanceOf(AuthenticationError);
    // A valid token where it may not go: 403.
    const other = await newTask();
    const elsewhere = new FedgeClient({ baseUrl: url, taskId: other.id, token: (await admin.registerClient(task.id)).token });
    await expect(elsewhere.checkIn()).rejects.toMatchObject({ name: 'PermissionDeniedError', status: 403, code: 'forbidden' });
    await expect(elsewhere.checkIn()).rejects.toBeInstanceOf(PermissionDeniedError);
    const client = await newClient(task.id);
    await expect(client.getManifest(42)).rejects.toBeInstanceOf(NotFoundError);
    await client.waitForAssignment();
    const bad = new Float32Array(4 * 8 + 8 + 8 * 3 + 3).fill(NaN);
    await expect(client.submitUpdate({ round: 1, baseVersion: 0, delta: bad, numExamples: 5 })).rejects.toMatchObject({
      name: 'ValidationError',
      code: 'non_finite',
    });
    await expect(client.submitUpdate({ round: 1, baseVersion: 0, delta: new Float32Array(bad.length), numExamples: 0 })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it('rotates its own token and keeps working; a revoked client gets AuthenticationError token_revoked', async () => {
    const task = await newTask();
    const creds = await admin.registerClient(task.id, 'rotating', { expiresInSeconds: 3600 });
    const client = new FedgeClient({ baseUrl: url, taskId: task.id, token: creds.token });
    const rotated = await client.rotateToken();
    expect(rotated.token).not.toBe(creds.token);
    expect(Date.parse(rotated.expiresAt!)).toBeGreaterThan(Date.parse(creds.expiresAt!));
    expect((await client.checkIn()).status).toBe('assigned'); // the client uses its new token
    await expect(new FedgeClient({ baseUrl: url, taskId: task.id, token: creds.token }).checkIn()).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    expect((await admin.listClients(task.id)).find((c) => c.clientId === creds.clientId)).toMatchObject({ status: 'active', label: 'rotating' });
    await admin.revokeClient(task.id, creds.clientId);
    await expect(client.checkIn()).rejects.toMatchObject({ name: 'AuthenticationError', status: 401, code: 'token_revoked' });
  });

  it('returns "late" when the round closed before the update arrived', async () => {
    const task = await newTask({ clientsPerRound: 1, overSelection: 2 });
    const [a, b] = [await newClient(task.id), await newClient(task.id)];
    await a.waitForAssignment();
    await b.waitForAssignment();
    const zero = new Float32Array(4 * 8 + 8 + 8 * 3 + 3);
    await a.submitUpdate({ round: 1, baseVersion: 0, delta: zero, numExamples: 3 });
    await expect(b.submitUpdate({ round: 1, baseVersion: 0, delta: zero, numExamples: 3 })).rejects.toBeInstanceOf(LateUpdateError);
  });

  it('returns "abandoned" when the round was abandoned at its deadline, and never reports a discarded update as accepted', async () => {
    const task = await newTask({ clientsPerRound: 2, minClients: 2, deadlineSeconds: 1 });
    const a = await newClient(task.id);
    // The deadline passes (1 s, one client of the 2 needed) while the client trains.
    const result = await a.participate(data(40, 1), { onStep: (step) => (step === 'submitting' ? sleepSync(2_500) : undefined) });
    expect(result.status).toBe('abandoned');
    const rounds = await admin.listRounds(task.id);
    expect(rounds.find((r) => r.round === 1)).toMatchObject({ status: 'abandoned', accepted: 0 });
  });

  it('retries network errors, 503 and 429 (honouring Retry-After), and a retried submit is counted once', async () => {
    const task = await newTask({ clientsPerRound: 1 });
    const script: ('reset' | '503' | '429' | 'lose-response' | 'pass')[] = ['reset', '503', '429', 'pass', 'lose-response', 'pass'];
    const seen: number[] = [];
    const started = Date.now();
    const client = await newClient(task.id, {
      maxRetries: 4,
      fetch: async (input, init) => {
        const scripted = String(input).includes('/update') || String(input).includes('/checkin');
        const step = scripted ? (script.shift() ?? 'pass') : 'pass';
        if (step === 'reset') throw new TypeError('fetch failed: socket hang up');
        if (step === '503') return new Response(JSON.stringify({ error: { code: 'internal_error', message: 'restarting' } }), { status: 503 });
        if (step === '429')
          return new Response(JSON.stringify({ error: { code: 'overloaded', message: 'busy' } }), { status: 429, headers: { 'retry-after': '1' } });
        const res = await fetch(input, init);
        if (scripted) seen.push(res.status);
        if (step === 'lose-response') throw new TypeError('fetch failed: connection reset after the request was sent');
        return res;
      },
    });
    const assignment = await client.waitForAssignment(); // reset, 503, 429 (1 s), then through
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    const zero = new Float32Array(4 * 8 + 8 + 8 * 3 + 3).fill(0.01);
    const ack = await client.submitUpdate({ round: assignment.round, baseVersion: 0, delta: zero, numExamples: 3 }); // first response lost, retried
    expect(seen).toEqual([200, 200, 200]); // the check-in, the submit whose answer was lost, its retry
    expect(ack.seq).toBe(1);
    const rounds = await admin.listRounds(task.id);
    expect(rounds.find((r) => r.round === 1)).toMatchObject({ accepted: 1, status: 'closed' });
  });

  it('says clearly when the platform lacks crypto.subtle (insecure page, bare React Native)', async () => {
    const task = await newTask();
    const client = await newClient(task.id);
    vi.stubGlobal('crypto', {});
    try {
      await expect(client.getWeights(0)).rejects.toMatchObject({
        name: 'FedgeError',
        code: 'missing_platform_api',
        message: expect.stringMatching(/crypto\.subtle is needed/),
      });
    } finally {
      vi.unstubAllGlobals();
    }
    expect((await client.getWeights(0)).flat.length).toBe(4 * 8 + 8 + 8 * 3 + 3);
  });

  it('refuses weights that do not match their content hash (content_hash_mismatch), and caches nothing of them', async () => {
    const task = await newTask();
    let corrupt = true;
    const client = await newClient(task.id, {
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!corrupt || !String(input).endsWith('/models/0/weights')) return res;
        const bytes = new Uint8Array(await res.arrayBuffer());
        bytes[bytes.length - 1]! ^= 0x01; // one bit of the last float, as a bad cache or proxy would
        return new Response(bytes, { status: res.status, headers: res.headers });
      },
    });
    const err = await client.getWeights(0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedgeError);
    expect(err).toMatchObject({ code: 'content_hash_mismatch', message: expect.stringContaining('weights of version 0 do not match their content hash') });
    corrupt = false;
    expect((await client.getWeights(0)).flat.length).toBe(4 * 8 + 8 + 8 * 3 + 3);
  });

  it('resumes a weights download that broke off mid-body with a byte range, and verifies the whole', async () => {
    const task = await newTask();
    const ranges: (string | null)[] = [];
    let broken = false;
    const client = await newClient(task.id, {
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).endsWith('/models/0/weights')) return res;
        ranges.push(new Headers(init?.headers).get('range'));
        if (broken) return res;
        broken = true;
        // The first answer's body dies after 100 bytes, as a dropped mobile connection's would.
        const reader = res.body!.getReader();
        let sent = 0;
        const cut = new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (sent >= 100) return controller.error(new TypeError('network connection lost'));
            const { done, value } = await reader.read();
            if (done) return controller.close();
            const piece = value.subarray(0, 100 - sent);
            sent += piece.byteLength;
            controller.enqueue(piece);
          },
        });
        return new Response(cut, { status: res.status, headers: res.headers });
      },
    });
    const { flat } = await client.getWeights(0);
    expect(flat.length).toBe(4 * 8 + 8 + 8 * 3 + 3);
    expect(ranges).toEqual([null, 'bytes=100-']); // the second request asked for the rest only
    expect(Array.from(flat)).toEqual(Array.from((await (await newClient(task.id)).getWeights(0)).flat));
  });

  it('throws only coded FedgeErrors: a bad option, a wire format error', async () => {
    expect(() => new FedgeClient({ baseUrl: '', taskId: 't', token: 'x' })).toThrow(expect.objectContaining({ name: 'FedgeError', code: 'invalid_options' }));
    const wire = (() => {
      try {
        decodeTensors(new Uint8Array(3));
      } catch (e) {
        return e;
      }
    })();
    expect(wire).toBeInstanceOf(WireFormatError);
    expect(wire).toBeInstanceOf(FedgeError);
    expect(wire).toMatchObject({ code: 'malformed_update' });
  });

  it('times out a request that never answers', async () => {
    const task = await newTask();
    const client = await newClient(task.id, {
      timeoutMs: 200,
      maxRetries: 0,
      fetch: (_i, init) => new Promise((_r, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason))),
    });
    await expect(client.checkIn()).rejects.toBeInstanceOf(APITimeoutError);
  });
});

async function waitForVersion(client: FedgeClient, version: number): Promise<Float32Array> {
  for (let i = 0; i < 100; i++) {
    const m = await client.getManifest('current');
    if (m.version >= version) return (await client.getWeights(version)).flat;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`version ${version} never appeared`);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
