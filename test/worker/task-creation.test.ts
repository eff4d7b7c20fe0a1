import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeTensors, type WireTensor } from '#protocol/safetensors.ts';
import { denseTopology } from '../shared/topology.ts';
import { adminJson, api, base64, checkIn, createTask, encodeUpdate, initialWeights, randomDelta, registerClient, split, submit, TOPOLOGY } from './helpers.ts';

async function r2Objects(): Promise<number> {
  return (await env.MODELS.list()).objects.length;
}

function weightsB64(tensors: WireTensor[]): string {
  return base64(encodeTensors(tensors));
}

async function create(body: Record<string, unknown>): Promise<{ status: number; code: string | undefined; message: string; body: any }> {
  const res = await adminJson('/tasks', 'POST', { name: 'x', modelTopology: TOPOLOGY, initialWeights: weightsB64(split(initialWeights())), ...body });
  const json = await res.json<any>();
  return { status: res.status, code: json.error?.code, message: json.error?.message ?? '', body: json };
}

/** n dense layers 1→1, each named by `name(i)`: 2n tensors `<name>/kernel` [1,1] and `<name>/bias` [1]. */
function chain(n: number, name: (i: number) => string) {
  const layers = Array.from({ length: n }, (_, i) => ({ name: name(i), units: 1 }));
  const tensors = layers.flatMap((l, i) => [
    { name: `${l.name}/kernel`, shape: [1, 1], data: Float32Array.of(i) },
    { name: `${l.name}/bias`, shape: [1], data: Float32Array.of(-i) },
  ]);
  return { topology: denseTopology(1, layers), tensors };
}

describe('a task is created only if clients can build and train it', () => {
  it('refuses a topology that is no tfjs model, or whose weights differ from initialWeights, naming the first difference', async () => {
    const before = await r2Objects();
    const foo = weightsB64([{ name: 'foo', shape: [2], data: Float32Array.of(1, 2) }]);
    const cases: [string, Record<string, unknown>, number, string, RegExp][] = [
      ['empty topology', { modelTopology: {}, initialWeights: foo }, 400, 'invalid_topology', /class_name must be "Sequential", "Model" or "Functional"/],
      [
        'unknown layer class',
        {
          modelTopology: {
            class_name: 'Sequential',
            config: { layers: [{ class_name: 'Dence', config: { name: 'd', units: 3, batch_input_shape: [null, 4] } }] },
          },
        },
        400,
        'invalid_topology',
        /no layer class "Dence"/,
      ],
      [
        'weights of another model',
        { initialWeights: foo },
        400,
        'weights_mismatch',
        /initialWeights has tensor "foo", which the topology does not create \(it creates "dense\/kernel", "dense\/bias"\)/,
      ],
      [
        'a kernel of the wrong shape',
        {
          initialWeights: weightsB64([
            { name: 'dense/kernel', shape: [3, 4], data: new Float32Array(12) },
            { name: 'dense/bias', shape: [3], data: new Float32Array(3) },
          ]),
        },
        400,
        'weights_mismatch',
        /tensor "dense\/kernel" has shape \[3,4\]; the topology creates it with shape \[4,3\]/,
      ],
      [
        'a missing bias',
        { initialWeights: weightsB64(split(initialWeights()).slice(0, 1)) },
        400,
        'weights_mismatch',
        /creates weight "dense\/bias" \[3\], which initialWeights lacks/,
      ],
      [
        'zero parameters',
        { initialWeights: weightsB64([{ name: 'dense/kernel', shape: [4, 0], data: new Float32Array(0) }]) },
        400,
        'invalid_weights',
        /tensor "dense\/kernel" has shape \[4,0\]: no parameters/,
      ],
      ['no tensors', { initialWeights: weightsB64([]) }, 400, 'invalid_weights', /holds no tensors/],
      ['undecodable weights', { initialWeights: btoa('garbage bytes') }, 400, 'invalid_weights', /^initialWeights: /],
      [
        'a prototype name',
        { initialWeights: weightsB64([{ name: 'constructor', shape: [1], data: Float32Array.of(1) }]) },
        400,
        'weights_mismatch',
        /tensor "constructor", which the topology does not create/,
      ],
      ['an unknown top-level field', { epochs: 3 }, 400, 'invalid_request', /Unrecognized key.*"epochs"/],
      ['an unknown round rule', { rounds: { clientsPerRound: 2, deadline: 30 } }, 400, 'invalid_request', /rounds: Unrecognized key.*"deadline"/],
      ['an unknown plan field', { plan: { epochs: 2, momentum: 0.9 } }, 400, 'invalid_request', /plan: Unrecognized key.*"momentum"/],
      ['an unknown strategy parameter', { strategy: { name: 'fedavgm', momentun: 0.9 } }, 400, 'invalid_strategy', /Unrecognized key.*"momentun"/],
      [
        'a robust strategy over its bound',
        { strategy: { name: 'median' }, rounds: { clientsPerRound: 200 } },
        400,
        'invalid_strategy',
        /at most 100 clients per round/,
      ],
    ];
    for (const [name, body, status, code, message] of cases) {
      const r = await create(body);
      expect({ name, status: r.status, code: r.code }).toEqual({ name, status, code });
      expect(r.message).toMatch(message);
    }
    // Nothing refused was stored: no weight blobs in R2, no tasks in D1.
    expect(await r2Objects()).toBe(before);
    const list = await (await adminJson('/tasks', 'GET')).json<any>();
    expect(list.tasks.filter((t: any) => t.name === 'x')).toEqual([]);
  });

  it('bounds tensor names, so the update size cap always leaves room for a valid update', async () => {
    // The reported defect: 200 tensors with 1,500-character names made a task whose every update was 413.
    const long = chain(100, (i) => `layer${i}_`.padEnd(1_490, 'x'));
    const refused = await create({ modelTopology: long.topology, initialWeights: weightsB64(long.tensors) });
    expect([refused.status, refused.code]).toEqual([400, 'invalid_weights']);
    expect(refused.message).toMatch(/\(1497 characters\) must be 1–256 letters, digits and _ \. : \/ -/);
    const odd = chain(1, () => 'dense layer');
    expect((await create({ modelTopology: odd.topology, initialWeights: weightsB64(odd.tensors) })).code).toBe('invalid_weights');

    // At the longest allowed names the cap still fits a real update with metrics.
    const longest = chain(100, (i) => `layer${i}_`.padEnd(249, 'x'));
    expect(longest.tensors.every((t) => t.name.length <= 256)).toBe(true);
    const ok = await create({ modelTopology: longest.topology, initialWeights: weightsB64(longest.tensors), rounds: { clientsPerRound: 1, overSelection: 1 } });
    expect(ok.status).toBe(201);
    const taskId = ok.body.id as string;
    const client = await registerClient(taskId);
    expect((await checkIn(taskId, client)).body.status).toBe('assigned');
    const metrics = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`metric_${i}_`.padEnd(64, 'm'), -1.234567890123456e-300]));
    const update = encodeTensors(
      longest.tensors.map((t) => ({ ...t, data: new Float32Array(t.data.length).fill(0.5) })),
      { 'fedge.base_version': '0', 'fedge.num_examples': '100000', 'fedge.metrics': JSON.stringify(metrics) },
    );
    expect(update.byteLength).toBeLessThanOrEqual(ok.body.maxUpdateBytes);
    const res = await submit(taskId, client, 1, update);
    expect([res.status, res.body.numExamples]).toEqual([200, 100_000]);
  });

  it('treats Object.prototype names as plain data: a layer named toString trains; a stray constructor tensor is a 422', async () => {
    const proto = chain(2, (i) => ['toString', '__proto__'][i]!);
    const created = await create({
      modelTopology: proto.topology,
      initialWeights: weightsB64(proto.tensors),
      rounds: { clientsPerRound: 1, overSelection: 1 },
    });
    expect(created.status).toBe(201);
    expect(created.body.tensors.map((t: any) => t.name)).toEqual(['toString/kernel', 'toString/bias', '__proto__/kernel', '__proto__/bias']);

    const { id } = await createTask({ clientsPerRound: 1 });
    const a = await registerClient(id);
    await checkIn(id, a);
    const good = randomDelta(3);
    const withExtra = (name: string) =>
      encodeTensors([...split(good).slice(0, 1), { name, shape: [3], data: good.slice(12) }], { 'fedge.base_version': '0', 'fedge.num_examples': '5' });
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const r = await submit(id, a, 1, withExtra(name));
      expect({ name, status: r.status, code: r.body.error?.code }).toEqual({ name, status: 422, code: 'tensor_mismatch' });
    }
    // A __proto__ metric name is refused everywhere metrics are taken.
    const protoMetrics = encodeUpdate(good, { baseVersion: 0, numExamples: 5, metrics: JSON.parse('{"__proto__": 1}') });
    expect((await submit(id, a, 1, protoMetrics)).body.error.code).toBe('invalid_metadata');
    const server = await api(`/tasks/${id}/models/0/server-metrics`, {
      method: 'PUT',
      headers: { authorization: 'Bearer test-admin-token', 'content-type': 'application/json' },
      body: '{"metrics":{"__proto__":1}}',
    });
    expect([server.status, (await server.json<any>()).error.code]).toEqual([400, 'invalid_request']);
    const r = await submit(id, a, 1, encodeUpdate(good, { baseVersion: 0, numExamples: 5, metrics: { loss: 0.5 } }));
    expect(r.status).toBe(200);
  });

  it('takes updates only as application/octet-stream (415 otherwise)', async () => {
    const { id } = await createTask({ clientsPerRound: 1 });
    const a = await registerClient(id);
    await checkIn(id, a);
    const body = encodeUpdate(randomDelta(4), { baseVersion: 0, numExamples: 5 });
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'application/json', null]) {
      const headers: Record<string, string> = { ...a.auth };
      if (type) headers['content-type'] = type;
      const res = await api(`/tasks/${id}/rounds/1/update`, { method: 'PUT', headers, body });
      expect({ type, status: res.status, code: (await res.json<any>()).error.code }).toEqual({ type, status: 415, code: 'unsupported_media_type' });
    }
    const res = await api(`/tasks/${id}/rounds/1/update`, {
      method: 'PUT',
      headers: { ...a.auth, 'content-type': 'Application/Octet-Stream; charset=binary' },
      body,
    });
    expect(res.status).toBe(200);
  });
});
