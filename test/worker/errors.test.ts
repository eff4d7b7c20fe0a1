import { runDurableObjectAlarm, runInDurableObject, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeTensors } from '#protocol/safetensors.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  ADMIN,
  adminJson,
  api,
  checkIn,
  createTask,
  downloadWeights,
  encodeUpdate,
  fedavgReference,
  initialWeights,
  maxAbsDiff,
  NUM_PARAMS,
  randomDelta,
  registerClient,
  split,
  stubOf,
  submit,
} from './helpers.ts';

async function ledgerRows(taskId: string): Promise<number> {
  return runInDurableObject(
    stubOf(taskId),
    async (_o: TaskAggregator, state) => state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM ledger').one().n,
  );
}

describe('bad input gets its own code and changes nothing', () => {
  it('rejects every malformed update, then aggregates exactly the valid ones', async () => {
    const { id } = await createTask({ clientsPerRound: 2, maxExamplesPerClient: 1000 });
    const [a, b, stranger] = await Promise.all([registerClient(id), registerClient(id), registerClient(id)]);
    await checkIn(id, a!);
    await checkIn(id, b!);
    const good = randomDelta(11);
    const withNaN = good.slice();
    withNaN[7] = NaN;
    const withInf = good.slice();
    withInf[14] = -Infinity;
    const valid = encodeUpdate(good, { baseVersion: 0, numExamples: 5 });
    const wrongName = encodeTensors(
      [
        { name: 'other/kernel', shape: [4, 3], data: good.slice(0, 12) },
        { name: 'dense/bias', shape: [3], data: good.slice(12) },
      ],
      { 'fedge.base_version': '0', 'fedge.num_examples': '5' },
    );
    const wrongShape = encodeTensors(
      [
        { name: 'dense/kernel', shape: [3, 4], data: good.slice(0, 12) },
        { name: 'dense/bias', shape: [3], data: good.slice(12) },
      ],
      { 'fedge.base_version': '0', 'fedge.num_examples': '5' },
    );
    const missingTensor = encodeTensors(split(good).slice(0, 1), { 'fedge.base_version': '0', 'fedge.num_examples': '5' });
    const f16Header = JSON.stringify({
      'dense/kernel': { dtype: 'F16', shape: [4, 3], data_offsets: [0, 24] },
      'dense/bias': { dtype: 'F16', shape: [3], data_offsets: [24, 30] },
      __metadata__: { 'fedge.base_version': '0', 'fedge.num_examples': '5' },
    });
    const f16 = new Uint8Array(8 + f16Header.length + 30);
    new DataView(f16.buffer).setUint32(0, f16Header.length, true);
    f16.set(new TextEncoder().encode(f16Header), 8);
    const corrupt = valid.slice();
    corrupt[10] = 0xff;

    const cases: [string, Uint8Array | string, number, string][] = [
      ['truncated body', valid.subarray(0, valid.length - 3), 400, 'malformed_update'],
      ['corrupt header', corrupt, 400, 'malformed_update'],
      ['random bytes', Uint8Array.from({ length: 100 }, (_, i) => (i * 37) & 255), 400, 'malformed_update'],
      ['empty body', new Uint8Array(0), 400, 'malformed_update'],
      ['wrong tensor name', wrongName, 422, 'tensor_mismatch'],
      ['wrong shape', wrongShape, 422, 'tensor_mismatch'],
      ['missing tensor', missingTensor, 422, 'tensor_mismatch'],
      ['float16 dtype', f16, 422, 'tensor_mismatch'],
      ['NaN', encodeUpdate(withNaN, { baseVersion: 0, numExamples: 5 }), 422, 'non_finite'],
      ['-Infinity', encodeUpdate(withInf, { baseVersion: 0, numExamples: 5 }), 422, 'non_finite'],
      ['zero examples', encodeUpdate(good, { baseVersion: 0, numExamples: 0 }), 422, 'invalid_example_count'],
      ['negative examples', encodeUpdate(good, { baseVersion: 0, numExamples: -4 }), 422, 'invalid_example_count'],
      ['fractional examples', encodeUpdate(good, { baseVersion: 0, numExamples: 2.5 }), 422, 'invalid_example_count'],
      ['missing example count', encodeUpdate(good, { baseVersion: 0 }), 422, 'invalid_example_count'],
      ['examples over the cap', encodeUpdate(good, { baseVersion: 0, numExamples: 1001 }), 422, 'invalid_example_count'],
      ['wrong base version', encodeUpdate(good, { baseVersion: 3, numExamples: 5 }), 409, 'base_version_mismatch'],
      ['missing base version', encodeUpdate(good, { numExamples: 5 }), 422, 'invalid_metadata'],
      ['metrics not numbers', encodeUpdate(good, { baseVersion: 0, numExamples: 5, metrics: { loss: 'low' } }), 422, 'invalid_metadata'],
      ['body over the size cap', new Uint8Array(NUM_PARAMS * 4 + 64 * 1024 + 2 * 256 + 1), 413, 'payload_too_large'],
    ];
    for (const [name, body, status, code] of cases) {
      const r = await submit(id, a!, 1, body);
      expect({ name, status: r.status, code: r.body.error?.code }).toEqual({ name, status, code });
      expect(typeof r.body.error.message).toBe('string');
    }
    // Unknown round, a client that was never assigned.
    expect((await submit(id, a!, 2, valid)).body.error.code).toBe('round_not_found');
    expect((await submit(id, stranger!, 1, valid)).body.error.code).toBe('not_assigned');
    expect(await ledgerRows(id)).toBe(0);
    const live = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(live.currentRound).toMatchObject({ accepted: 0, assigned: 2 });
    // Rejections of assigned clients are the round's statistics; the stranger's not_assigned is not
    // (anyone with a token could inflate it), and neither is the unknown round.
    expect(live.currentRound.rejectedByCode).toEqual({
      malformed_update: 4,
      tensor_mismatch: 4,
      non_finite: 2,
      invalid_example_count: 5,
      base_version_mismatch: 1,
      invalid_metadata: 2,
      payload_too_large: 1,
    });

    // The valid updates still aggregate to exactly their own average.
    const other = randomDelta(12);
    expect((await submit(id, a!, 1, valid)).status).toBe(200);
    expect((await submit(id, b!, 1, encodeUpdate(other, { baseVersion: 0, numExamples: 15 }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));
    const v1 = await downloadWeights(id, 1);
    expect(
      maxAbsDiff(
        v1,
        fedavgReference(initialWeights(), [
          { delta: good, n: 5 },
          { delta: other, n: 15 },
        ]),
      ),
    ).toBeLessThanOrEqual(1e-6);
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ accepted: 2, rejected: 19 });

    // A late update to the closed round.
    expect(await submit(id, stranger!, 1, valid)).toMatchObject({ status: 409, body: { error: { code: 'round_closed' } } });
    // The versions are unchanged by all of it.
    const versions = await (await api(`/tasks/${id}/models`, { headers: ADMIN })).json<any>();
    expect(versions.versions.map((v: any) => v.version)).toEqual([1, 0]);
  });

  it('authenticates every call and scopes client tokens to their task', async () => {
    const { id } = await createTask();
    const { id: otherTask } = await createTask();
    const client = await registerClient(id);
    expect(await api(`/tasks/${id}/checkin`, { method: 'POST' })).toMatchObject({ status: 401 });
    const noToken = await api(`/tasks/${id}/checkin`, { method: 'POST' });
    expect((await noToken.json<any>()).error.code).toBe('unauthorized');
    expect(noToken.headers.get('www-authenticate')).toBe('Bearer realm="fedge"');
    // A token that is not valid is a 401 too (RFC 6750 invalid_token); 403 is for valid tokens out of bounds.
    const wrong = await api(`/tasks/${id}/checkin`, { method: 'POST', headers: { authorization: `Bearer ${client.clientId}.not-the-secret` } });
    expect([wrong.status, (await wrong.json<any>()).error.code]).toEqual([401, 'unauthorized']);
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="fedge", error="invalid_token", error_description="unauthorized"');
    const garbage = await api('/tasks', { headers: { authorization: 'Bearer nonsense' } });
    expect([garbage.status, (await garbage.json<any>()).error.code]).toEqual([401, 'unauthorized']);
    // A client token on an operator route, and on another task.
    const asClient = await api('/tasks', { headers: client.auth });
    expect([asClient.status, (await asClient.json<any>()).error.code]).toEqual([403, 'forbidden']);
    const otherTaskCall = await api(`/tasks/${otherTask}/checkin`, { method: 'POST', headers: client.auth });
    expect([otherTaskCall.status, (await otherTaskCall.json<any>()).error.code]).toEqual([403, 'forbidden']);
    // The admin token cannot check in: only clients train.
    const adminCheckin = await api(`/tasks/${id}/checkin`, { method: 'POST', headers: ADMIN });
    expect(adminCheckin.status).toBe(403);
    // Clients may read their own task's models.
    expect((await api(`/tasks/${id}/models/current`, { headers: client.auth })).status).toBe(200);
  });

  it('answers unknown tasks, versions, rounds and routes with their own codes', async () => {
    const { id } = await createTask();
    const cases: [string, number, string][] = [
      ['/tasks/no-such-task', 404, 'task_not_found'],
      ['/tasks/no-such-task/models/0', 404, 'task_not_found'],
      [`/tasks/${id}/models/7`, 404, 'version_not_found'],
      [`/tasks/${id}/models/7/weights`, 404, 'version_not_found'],
      [`/tasks/${id}/rounds/9`, 404, 'round_not_found'],
      [`/tasks/${id}/models/minus-one`, 400, 'invalid_request'],
      ['/nothing/here', 404, 'not_found'],
    ];
    for (const [path, status, code] of cases) {
      const res = await api(path, { headers: ADMIN });
      expect({ path, status: res.status, code: (await res.json<any>()).error.code }).toEqual({ path, status, code });
    }
    const outside = await SELF.fetch('https://fedge.test/elsewhere');
    expect([outside.status, (await outside.json<any>()).error.code]).toEqual([404, 'not_found']);
  });

  it('rejects malformed JSON and invalid task definitions', async () => {
    const bad = await api('/tasks', { method: 'POST', headers: { ...ADMIN, 'content-type': 'application/json' }, body: '{"name": "x",' });
    expect([bad.status, (await bad.json<any>()).error.code]).toEqual([400, 'malformed_json']);
    const weights = btoa(String.fromCharCode(...encodeTensors(split(initialWeights()))));
    const invalid: [unknown, string, number][] = [
      [{ modelTopology: {}, initialWeights: weights }, 'invalid_request', 400],
      [{ name: 'x', modelTopology: {}, initialWeights: 'not base64!' }, 'invalid_request', 400],
      [{ name: 'x', modelTopology: {}, initialWeights: btoa('garbage bytes') }, 'invalid_weights', 400],
      [{ name: 'x', modelTopology: {}, initialWeights: weights, rounds: { clientsPerRound: 0 } }, 'invalid_request', 400],
      [{ name: 'x', modelTopology: {}, initialWeights: weights, rounds: { clientsPerRound: 2, minClients: 3 } }, 'invalid_request', 400],
      [{ name: 'x', modelTopology: {}, initialWeights: weights, plan: { learningRate: -1 } }, 'invalid_request', 400],
      [{ name: 'x', modelTopology: {}, initialWeights: weights, plan: { optimizer: 'lbfgs' } }, 'invalid_request', 400],
    ];
    for (const [body, code, status] of invalid) {
      const res = await adminJson('/tasks', 'POST', body);
      expect({ body, status: res.status, code: (await res.json<any>()).error.code }).toEqual({ body, status, code });
    }
    const nan = initialWeights();
    nan[3] = NaN;
    const res = await adminJson('/tasks', 'POST', { name: 'x', modelTopology: {}, initialWeights: btoa(String.fromCharCode(...encodeTensors(split(nan)))) });
    expect([res.status, (await res.json<any>()).error.code]).toEqual([422, 'non_finite']);
    // None of the refused definitions created a task (the others in this file are all named "tiny").
    const list = await (await api('/tasks', { headers: ADMIN })).json<any>();
    expect(list.tasks.filter((t: any) => t.name === 'x')).toEqual([]);
  });
});
