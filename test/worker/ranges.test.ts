/**
 * Parameter-range shards on the real runtime: a 3,003,000-parameter model (above the tests'
 * RANGED_ABOVE_PARAMS of 2M) split into three ranges of 1,376,256 (vitest.config.ts), each a
 * RangeAggregator object; clients send their updates in chunks and commit them at the master; the
 * version is assembled in R2 by a multipart upload (miniflare enforces R2's part rules: 5 MiB, one
 * size but the last).
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeChunk } from '#protocol/chunked.ts';
import { halfTable, toHalf } from '#protocol/encoding.ts';
import { concatTensors, decodeTensors, encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { createRunningSum } from '../../aggregator/src/kernels/running-sum.ts';
import { rangedKey, rangeName } from '../../aggregator/src/master/ranges.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import { createStrategy } from '../../aggregator/src/strategies/index.ts';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import { ADMIN, adminJson, api, base64, type Client, checkIn, maxAbsDiff, registerClient, stubOf, submit } from './helpers.ts';

const INPUTS = 1000;
const UNITS = 3000;
const TENSORS = [
  { name: 'big/kernel', shape: [INPUTS, UNITS] },
  { name: 'big/bias', shape: [UNITS] },
];
const P = INPUTS * UNITS + UNITS; // 3,003,000
const R = 1_376_256;

function base(): Float32Array {
  const next = rng(7);
  return Float32Array.from({ length: P }, () => next() - 0.5);
}

function delta(seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: P }, () => (next() * 2 - 1) * 0.01);
}

async function rangedTask(extra: Record<string, unknown> = {}, rounds: Record<string, unknown> = {}) {
  return adminJson('/tasks', 'POST', {
    name: 'large',
    modelTopology: denseTopology(INPUTS, [{ name: 'big', units: UNITS }]),
    initialWeights: base64(encodeTensors(splitFlat(TENSORS, base()))),
    rounds: { clientsPerRound: 3, overSelection: 1, deadlineSeconds: 600, ...rounds },
    plan: { epochs: 1, batchSize: 8, learningRate: 0.1 },
    ...extra,
  });
}

function sendChunk(taskId: string, c: Client, round: number, index: number, body: BodyInit) {
  return api(`/tasks/${taskId}/rounds/${round}/update/chunks/${index}`, {
    method: 'PUT',
    headers: { ...c.auth, 'content-type': 'application/octet-stream' },
    body,
  });
}

function commit(taskId: string, c: Client, round: number, body: unknown) {
  return api(`/tasks/${taskId}/rounds/${round}/update/commit`, {
    method: 'POST',
    headers: { ...c.auth, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

function chunksOf(d: Float32Array, baseVersion: number): Uint8Array[] {
  return [0, 1, 2].map((k) => encodeChunk(d.subarray(k * R, Math.min(P, (k + 1) * R)), 'float32', { baseVersion, index: k }));
}

function rangeStub(taskId: string, k: number) {
  return env.RANGES.get(env.RANGES.idFromName(rangeName(taskId, k)));
}

describe('a model split into parameter ranges', { timeout: 120_000 }, () => {
  it('takes chunked updates exactly once and publishes the FedAvg of them, assembled in R2 in parts, equal to one object’s', async () => {
    const created = await rangedTask({}, { overSelection: 2 });
    const task = await created.json<any>();
    expect(created.status).toBe(201);
    expect(task).toMatchObject({ numParams: P, shards: 1, chunked: { chunkParams: R, chunks: 3 }, maxUpdateBytes: R * 4 + 1024 });
    const clients = [await registerClient(task.id), await registerClient(task.id), await registerClient(task.id)];
    const deltas = [delta(1), delta(2), delta(3)];
    const n = [10, 20, 30];
    const hashes: string[][] = [];
    for (const [i, c] of clients.entries()) {
      const ci = await checkIn(task.id, c);
      expect(ci.body).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0, chunked: { chunkParams: R, chunks: 3 } });
      const acks = [];
      // Out of order: the chunks are independent.
      for (const k of [2, 0, 1]) {
        const res = await sendChunk(task.id, c, 1, k, chunksOf(deltas[i]!, 0)[k]!);
        const ack = await res.json<any>();
        expect(res.status, JSON.stringify(ack)).toBe(200);
        expect(ack).toMatchObject({ round: 1, index: k, replayed: false });
        acks[k] = ack.bodySha256;
      }
      hashes.push(acks);
    }
    const [a, b, c] = clients as [Client, Client, Client];

    // A chunk sent again with its bytes is counted once; with other bytes it is refused.
    const again = await sendChunk(task.id, a, 1, 1, chunksOf(deltas[0]!, 0)[1]!);
    expect(again.status).toBe(200);
    expect(await again.json<any>()).toMatchObject({ index: 1, replayed: true, bodySha256: hashes[0]![1] });
    const other = await sendChunk(task.id, a, 1, 1, chunksOf(deltas[1]!, 0)[1]!);
    expect(other.status).toBe(409);
    expect((await other.json<any>()).error.code).toBe('duplicate_conflict');
    // A chunk of the wrong length, index or base, one past the last, a NaN; a whole update.
    const stranger = await registerClient(task.id);
    await checkIn(task.id, stranger);
    const refusals: [number, Uint8Array, string][] = [
      [0, encodeChunk(new Float32Array(10), 'float32', { baseVersion: 0, index: 0 }), 'tensor_mismatch'],
      [0, chunksOf(deltas[1]!, 0)[1]!, 'invalid_metadata'],
      [0, chunksOf(deltas[1]!, 1)[0]!, 'base_version_mismatch'],
      [3, chunksOf(deltas[1]!, 0)[0]!, 'invalid_request'],
      [2, encodeChunk(new Float32Array(P - 2 * R).fill(Number.NaN), 'float32', { baseVersion: 0, index: 2 }), 'non_finite'],
    ];
    for (const [k, body, code] of refusals) {
      const res = await sendChunk(task.id, stranger, 1, k, body);
      expect((await res.json<any>()).error.code).toBe(code);
    }
    for (const k of [0, 1, 2]) expect(await rangeStub(task.id, k).chunkOf(1, stranger.clientId)).toBeNull();
    const whole = await submit(task.id, b, 1, new Uint8Array(16));
    expect(whole.status).toBe(409);
    expect(whole.body.error.code).toBe('chunked_upload_required');

    // Evicted range objects lose nothing they acknowledged.
    for (const k of [0, 1, 2]) await evictDurableObject(rangeStub(task.id, k));
    for (const k of [0, 1, 2]) expect(await rangeStub(task.id, k).chunkOf(1, a.clientId)).toBe(hashes[0]![k]);

    const commitOf = (i: number) => ({ baseVersion: 0, numExamples: n[i], metrics: { loss: i }, chunks: hashes[i] });
    const first = await commit(task.id, a, 1, commitOf(0));
    const ack = await first.json<any>();
    expect(first.status, JSON.stringify(ack)).toBe(200);
    expect(ack).toMatchObject({ round: 1, clientId: a.clientId, seq: 1, numExamples: 10 });
    // A retried commit returns the same ack; a different one is a conflict.
    const retry = await commit(task.id, a, 1, commitOf(0));
    expect(retry.headers.get('fedge-replayed')).toBe('true');
    expect(await retry.json<any>()).toEqual(ack);
    const changed = await commit(task.id, a, 1, { ...commitOf(0), numExamples: 11 });
    expect((await changed.json<any>()).error.code).toBe('duplicate_conflict');
    // A commit that names a chunk the range does not hold: update_incomplete, nothing counted.
    await sendChunk(task.id, stranger, 1, 0, chunksOf(deltas[0]!, 0)[0]!);
    const incomplete = await commit(task.id, stranger, 1, commitOf(0));
    expect(incomplete.status).toBe(409);
    expect(await incomplete.json<any>()).toMatchObject({ error: { code: 'update_incomplete', message: expect.stringContaining('chunks 1, 2') } });
    expect((await stubOf(task.id).status())!.accepted).toBe(1);

    expect((await commit(task.id, b, 1, commitOf(1))).status).toBe(200);
    expect((await commit(task.id, c, 1, commitOf(2))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(task.id));
    const live = (await stubOf(task.id).status())!;
    expect(live).toMatchObject({ round: 2, status: 'open', baseVersion: 1 });

    const res = await api(`/tasks/${task.id}/models/1/weights`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const published = concatTensors(decodeTensors(bytes).tensors);
    // The same float64 operations per parameter as one object summing whole updates: bit-identical.
    const one = createRunningSum(P);
    for (const [i, d] of deltas.entries()) one.add(d, n[i]!);
    const expected = new Float32Array(P);
    one.finalizeInto(base(), expected);
    expect(maxAbsDiff(published, expected)).toBe(0);
    const b0 = base();
    const reference = Float64Array.from(b0, (x, j) => x + (10 * deltas[0]![j]! + 20 * deltas[1]![j]! + 30 * deltas[2]![j]!) / 60);
    expect(maxAbsDiff(published, reference)).toBeLessThan(1e-6);

    // One object in R2, its hash the manifest's, downloadable in ranges.
    const manifest = await (await api(`/tasks/${task.id}/models/1`, { headers: ADMIN })).json<any>();
    const digest = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((x) => x.toString(16).padStart(2, '0')).join('');
    expect(manifest).toMatchObject({ version: 1, participants: 3, numExamples: 60, contentHash: digest, byteLength: bytes.length });
    const object = await env.MODELS.head(rangedKey(task.id, 1));
    expect(object?.size).toBe(bytes.length);
    const part = await api(`/tasks/${task.id}/models/1/weights`, { headers: { ...ADMIN, range: 'bytes=5505000-5505099' } });
    expect(part.status).toBe(206);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.subarray(5_505_000, 5_505_100));

    // Round 2 starts from version 1: its chunks and the ranges' old chunks are gone.
    expect(await rangeStub(task.id, 0).chunkOf(1, a.clientId)).toBeNull();
    const ci = await checkIn(task.id, a);
    expect(ci.body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
    const stale = await sendChunk(task.id, a, 2, 0, chunksOf(deltas[0]!, 0)[0]!);
    expect((await stale.json<any>()).error.code).toBe('base_version_mismatch');
  });

  it('runs the coordinate-wise median range by range (float16 chunks): the version is base + the median of the updates', async () => {
    const task = await (await rangedTask({ strategy: { name: 'median' }, updateEncoding: 'float16' })).json<any>();
    expect(task).toMatchObject({ strategy: { name: 'median' }, chunked: { chunks: 3 } });
    const deltas = [delta(51), delta(52), delta(53)];
    for (const [i, c] of [await registerClient(task.id), await registerClient(task.id), await registerClient(task.id)].entries()) {
      await checkIn(task.id, c);
      const hashes = [];
      for (let k = 0; k < 3; k++) {
        const body = encodeChunk(deltas[i]!.subarray(k * R, Math.min(P, (k + 1) * R)), 'float16', { baseVersion: 0, index: k });
        hashes[k] = (await (await sendChunk(task.id, c, 1, k, body)).json<any>()).bodySha256;
      }
      expect((await commit(task.id, c, 1, { baseVersion: 0, numExamples: 1 + i, chunks: hashes })).status).toBe(200);
    }
    await runDurableObjectAlarm(stubOf(task.id));
    const res = await api(`/tasks/${task.id}/models/1/weights`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const published = concatTensors(decodeTensors(await res.arrayBuffer()).tensors);
    // The median of the three float16 values at every coordinate (rounding is monotonic: the
    // float16 of the median), added to the base in float32: exactly.
    const halves = halfTable();
    const b0 = base();
    let worst = 0;
    for (let j = 0; j < P; j++) {
      const v = [deltas[0]![j]!, deltas[1]![j]!, deltas[2]![j]!].sort((x, y) => x - y)[1]!;
      worst = Math.max(worst, Math.abs(published[j]! - Math.fround(b0[j]! + halves[toHalf(v)]!)));
    }
    expect(worst).toBe(0);
  });

  it('runs Krum across the ranges (distances added range by range, then the selection averaged): bit-identical to one object', async () => {
    const task = await (await rangedTask({ strategy: { name: 'krum', f: 1, m: 2 } }, { clientsPerRound: 5, minClients: 5 })).json<any>();
    const deltas = [delta(61), delta(62), delta(63), delta(64), delta(65)];
    // One Byzantine client: a large update, which Krum must not select.
    for (let j = 0; j < P; j++) deltas[4]![j] = deltas[4]![j]! * 100;
    for (const [i, d] of deltas.entries()) {
      const c = await registerClient(task.id);
      await checkIn(task.id, c);
      const hashes = [];
      for (const [k, body] of chunksOf(d, 0).entries()) hashes[k] = (await (await sendChunk(task.id, c, 1, k, body)).json<any>()).bodySha256;
      expect((await commit(task.id, c, 1, { baseVersion: 0, numExamples: 1 + i, chunks: hashes })).status).toBe(200);
    }
    await runDurableObjectAlarm(stubOf(task.id));
    const res = await api(`/tasks/${task.id}/models/1/weights`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const published = concatTensors(decodeTensors(await res.arrayBuffer()).tensors);
    const one = createStrategy({ name: 'krum', f: 1, m: 2, weighting: 'equal' }).aggregate(
      base(),
      { kind: 'updates', read: (s, e) => deltas.map((d) => d.subarray(s, e)), numParams: P, count: 5, rangeLength: 65_536, numExamples: [1, 2, 3, 4, 5] },
      null,
    );
    expect(maxAbsDiff(published, one.next)).toBe(0);
    // And it is not the plain mean, which the Byzantine update would drag.
    const b0 = base();
    expect(Math.abs(published[0]! - b0[0]!)).toBeLessThan(0.02);
  });

  it('resumes a chunk whose connection dropped: nothing of it is stored, and the retry is taken', async () => {
    const task = await (await rangedTask({}, { clientsPerRound: 1, minClients: 1 })).json<any>();
    const c = await registerClient(task.id);
    await checkIn(task.id, c);
    const body = chunksOf(delta(9), 0)[0]!;
    // The connection drops halfway: the body ends short of its declared length.
    const half = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(body.slice(0, body.length >> 1));
        ctl.close();
      },
    });
    const cut = await api(`/tasks/${task.id}/rounds/1/update/chunks/0`, {
      method: 'PUT',
      headers: { ...c.auth, 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
      body: half,
    }).catch((e: unknown) => e);
    if (cut instanceof Response) expect(cut.status).toBeGreaterThanOrEqual(400);
    expect(await rangeStub(task.id, 0).chunkOf(1, c.clientId)).toBeNull();
    const retry = await sendChunk(task.id, c, 1, 0, body);
    expect(retry.status).toBe(200);
    expect(await retry.json<any>()).toMatchObject({ index: 0, replayed: false });
  });

  it('completes a close that crashed after the version was in R2 (before D1 knew it), recording it once', async () => {
    const task = await (await rangedTask({}, { clientsPerRound: 2, minClients: 2 })).json<any>();
    const [a, b] = [await registerClient(task.id), await registerClient(task.id)];
    const deltas = [delta(31), delta(32)];
    for (const [i, c] of [a, b].entries()) {
      await checkIn(task.id, c);
      const hashes = [];
      for (const [k, body] of chunksOf(deltas[i]!, 0).entries()) hashes[k] = (await (await sendChunk(task.id, c, 1, k, body)).json<any>()).bodySha256;
      // The first close attempt crashes once the file is in R2 (before D1 knows it); the runtime's retry goes on.
      if (i === 1)
        await runInDurableObject(stubOf(task.id), (o: TaskAggregator) => {
          o.faults.arm('after_blob', 'once');
        });
      expect((await commit(task.id, c, 1, { baseVersion: 0, numExamples: 5 * (i + 1), chunks: hashes })).status).toBe(200);
    }
    let res = await api(`/tasks/${task.id}/models/1/weights`, { headers: ADMIN });
    for (let i = 0; i < 100 && res.status !== 200; i++) {
      // Any client call finds the round closing without an alarm (a failed one is not retried here) and sets it again.
      await checkIn(task.id, a);
      await runDurableObjectAlarm(stubOf(task.id)).catch(() => false);
      await new Promise((r) => setTimeout(r, 50));
      res = await api(`/tasks/${task.id}/models/1/weights`, { headers: ADMIN });
    }
    expect(res.status).toBe(200);
    // The fault was hit: the version was assembled once, the second attempt only hashed and recorded it.
    expect(await runInDurableObject(stubOf(task.id), (o: TaskAggregator) => (o.faults as unknown as { armed: Map<string, unknown> }).armed.size)).toBe(0);
    const published = concatTensors(decodeTensors(await res.arrayBuffer()).tensors);
    const b0 = base();
    const expected = Float64Array.from(b0, (x, j) => x + (5 * deltas[0]![j]! + 10 * deltas[1]![j]!) / 15);
    expect(maxAbsDiff(published, expected)).toBeLessThan(1e-6);
    const versions = await (await api(`/tasks/${task.id}/models`, { headers: ADMIN })).json<any>();
    expect(versions.versions.map((v: any) => v.version).sort()).toEqual([0, 1]);
    expect((await stubOf(task.id).status())!).toMatchObject({ round: 2, baseVersion: 1 });
  });

  it('abandons a round below its minimum at the deadline (its chunks dropped), and deletes a stopped task with its range objects', async () => {
    const task = await (await rangedTask({}, { clientsPerRound: 2, minClients: 2, deadlineSeconds: 1 })).json<any>();
    const a = await registerClient(task.id);
    await checkIn(task.id, a);
    const hashes = [];
    for (const [k, body] of chunksOf(delta(41), 0).entries()) hashes[k] = (await (await sendChunk(task.id, a, 1, k, body)).json<any>()).bodySha256;
    expect((await commit(task.id, a, 1, { baseVersion: 0, numExamples: 3, chunks: hashes })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100));
    await runDurableObjectAlarm(stubOf(task.id));
    const rounds = await (await api(`/tasks/${task.id}/rounds`, { headers: ADMIN })).json<any>();
    expect(rounds.rounds.map((r: any) => [r.round, r.status])).toEqual([
      [2, 'open'],
      [1, 'abandoned'],
    ]);
    for (const k of [0, 1, 2]) expect(await rangeStub(task.id, k).chunkOf(1, a.clientId)).toBeNull();
    // A late chunk or commit for the abandoned round says so.
    expect((await (await commit(task.id, a, 1, { baseVersion: 0, numExamples: 3, chunks: hashes })).json<any>()).error.code).toBe('round_abandoned');

    expect((await adminJson(`/tasks/${task.id}/stop`, 'POST')).status).toBe(200);
    const deleted = await adminJson(`/tasks/${task.id}`, 'DELETE');
    expect(deleted.status, await deleted.clone().text()).toBe(200);
    expect((await env.MODELS.list({ prefix: `tasks/${task.id}/` })).objects).toEqual([]);
    const leftovers = await Promise.all(
      // Each range object's storage was deleted: deleteAll drops its tables too.
      [0, 1, 2].map((k) =>
        runInDurableObject(
          rangeStub(task.id, k),
          (_o, state) => state.storage.sql.exec(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'`).one().n,
        ),
      ),
    );
    expect(leftovers).toEqual([0, 0, 0]);
  });

  it('creates a task from initial weights uploaded in chunks: version 0 is assembled by its ranges, byte for byte the model', async () => {
    const open = await adminJson('/weight-uploads', 'POST', { numParams: P });
    const upload = await open.json<any>();
    expect(open.status).toBe(201);
    expect(upload).toMatchObject({ numParams: P, chunkParams: R, chunks: 3 });
    const weights = base();
    const put = (k: number, bytes: Uint8Array, id = upload.uploadId) =>
      api(`/weight-uploads/${id}/chunks/${k}`, { method: 'PUT', headers: { ...ADMIN, 'content-type': 'application/octet-stream' }, body: bytes });
    const chunk = (k: number) => new Uint8Array(weights.buffer, k * R * 4, (Math.min(P, (k + 1) * R) - k * R) * 4).slice();
    // Refusals: a chunk of the wrong size, a NaN, an unknown upload, a chunk past the last.
    expect((await (await put(0, chunk(0).subarray(4))).json<any>()).error.code).toBe('invalid_weights');
    const nan = chunk(1);
    new Float32Array(nan.buffer)[5] = Number.NaN;
    expect((await (await put(1, nan)).json<any>()).error).toMatchObject({ code: 'non_finite', message: expect.stringContaining(`index ${R + 5}`) });
    expect((await put(0, chunk(0), '00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await put(3, chunk(0))).status).toBe(400);
    const definition = {
      name: 'large from chunks',
      modelTopology: denseTopology(INPUTS, [{ name: 'big', units: UNITS }]),
      rounds: { clientsPerRound: 1, minClients: 1 },
      initialWeightsUpload: upload.uploadId,
    };
    for (const k of [0, 2]) expect((await put(k, chunk(k))).status).toBe(200);
    const incomplete = await adminJson('/tasks', 'POST', definition);
    expect(await incomplete.json<any>()).toMatchObject({ error: { code: 'invalid_weights', message: expect.stringContaining('chunk 1 not received') } });
    expect((await put(1, chunk(1))).status).toBe(200);
    const both = await adminJson('/tasks', 'POST', { ...definition, initialWeights: base64(encodeTensors(splitFlat(TENSORS, weights))) });
    expect((await both.json<any>()).error.code).toBe('invalid_request');
    const other = await adminJson('/tasks', 'POST', { ...definition, modelTopology: denseTopology(INPUTS, [{ name: 'big', units: UNITS - 1 }]) });
    expect((await other.json<any>()).error.code).toBe('weights_mismatch');

    const created = await adminJson('/tasks', 'POST', definition);
    const task = await created.json<any>();
    expect(created.status, JSON.stringify(task)).toBe(201);
    expect(task).toMatchObject({ numParams: P, currentVersion: 0, chunked: { chunks: 3 } });
    const res = await api(`/tasks/${task.id}/models/0/weights`, { headers: ADMIN });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const decoded = decodeTensors(bytes);
    expect(decoded.tensors.map((t) => [t.name, t.shape])).toEqual(TENSORS.map((t) => [t.name, t.shape]));
    expect(maxAbsDiff(concatTensors(decoded.tensors), weights)).toBe(0);
    const manifest = await (await api(`/tasks/${task.id}/models/0`, { headers: ADMIN })).json<any>();
    const digest = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((x) => x.toString(16).padStart(2, '0')).join('');
    expect(manifest).toMatchObject({ version: 0, contentHash: digest, byteLength: bytes.length });
    // The upload's chunks are gone; a round runs on the version as on any other.
    expect((await env.MODELS.list({ prefix: `uploads/${upload.uploadId}/` })).objects).toEqual([]);
    const c = await registerClient(task.id);
    expect((await checkIn(task.id, c)).body).toMatchObject({ status: 'assigned', baseVersion: 0, chunked: { chunks: 3 } });
  });

  it('creates a task that fits one object from an upload too', async () => {
    const upload = await (await adminJson('/weight-uploads', 'POST', { numParams: 15 })).json<any>();
    expect(upload).toMatchObject({ chunks: 1 });
    const weights = Float32Array.from({ length: 15 }, (_, i) => i / 7);
    const put = await api(`/weight-uploads/${upload.uploadId}/chunks/0`, {
      method: 'PUT',
      headers: { ...ADMIN, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(weights.buffer),
    });
    expect(put.status).toBe(200);
    const created = await adminJson('/tasks', 'POST', {
      name: 'tiny from chunks',
      modelTopology: denseTopology(4, [{ name: 'dense', units: 3, activation: 'softmax' }]),
      initialWeightsUpload: upload.uploadId,
    });
    const task = await created.json<any>();
    expect(created.status, JSON.stringify(task)).toBe(201);
    expect(task).toMatchObject({ numParams: 15, chunked: null });
    const res = await api(`/tasks/${task.id}/models/0/weights`, { headers: ADMIN });
    expect(concatTensors(decodeTensors(await res.arrayBuffer()).tensors)).toEqual(weights);
  });

  it('refuses what needs whole updates in one object, with invalid_sharding', async () => {
    for (const [extra, why] of [
      [{ strategy: { name: 'median', clipNorm: 1 } }, 'norm'],
      [{ shards: 2 }, 'shards must be 1'],
      [{ privacy: { mode: 'local', noiseMultiplier: 1, clipNorm: 1, delta: 1e-5 } }, 'differential privacy'],
    ] as const) {
      const res = await rangedTask(extra);
      const body = await res.json<any>();
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(body.error).toMatchObject({ code: 'invalid_sharding', message: expect.stringContaining(why) });
    }
  });
});
