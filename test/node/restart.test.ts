/**
 * Durability across a restart of the real local stack: `wrangler dev` (workerd with D1, R2 and
 * Durable Objects persisted to a state folder) is stopped and started again on the same folder,
 * and the task, its version 0 (manifest and weights), the client's token and its round
 * assignment must all still be there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, onTestFailed } from 'vitest';
import { decodeTensors, encodeTensors } from '#protocol/safetensors.ts';
import { findFreePort, type LocalServer, processGroupAlive, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';

const ADMIN_TOKEN = 'restart-test-admin-token';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };

const TOPOLOGY = {
  class_name: 'Sequential',
  config: { name: 'tiny', layers: [{ class_name: 'Dense', config: { units: 3, activation: 'softmax', batch_input_shape: [null, 4], name: 'dense' } }] },
  keras_version: 'tfjs-layers 4.22.0',
  backend: 'tensor_flow.js',
};

const FLAT = Float32Array.from({ length: 15 }, (_, i) => (i - 7) / 10);

function initialWeights(): Uint8Array {
  const flat = FLAT;
  return encodeTensors([
    { name: 'dense/kernel', shape: [4, 3], data: flat.slice(0, 12) },
    { name: 'dense/bias', shape: [3], data: flat.slice(12) },
  ]);
}

const servers = new Set<LocalServer>();
const stateDirs: string[] = [];
let output = '';

afterAll(async () => {
  // Safety net: the test stops its servers itself, even on failure, but never leave workerd behind.
  await Promise.all([...servers].map((s) => s.stop()));
  await Promise.all(stateDirs.map((d) => rm(d, { recursive: true, force: true })));
}, 60_000);

async function start(port: number, stateDir: string): Promise<LocalServer> {
  const server = await startLocalServer({ port, stateDir, adminToken: ADMIN_TOKEN, onOutput: (text) => (output += text) });
  servers.add(server);
  return server;
}

async function stop(server: LocalServer): Promise<void> {
  await server.stop();
  servers.delete(server);
  // Nothing of the process tree is left (wrangler, its node child, workerd): the group is empty.
  expect(processGroupAlive(server.pid)).toBe(false);
}

async function call(server: LocalServer, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.url}/v1${path}`, init);
}

async function json(res: Response): Promise<any> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`not JSON (HTTP ${res.status}): ${text.slice(0, 500)}`);
  }
}

it('keeps tasks, model versions, client tokens and round assignments across a restart', async () => {
  onTestFailed(() => {
    console.error(`--- wrangler output ---\n${output.slice(-20_000)}`);
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'fedge-restart-'));
  stateDirs.push(stateDir);
  const port = await findFreePort();

  // ---- first life -------------------------------------------------------------------------
  let server = await start(port, stateDir);
  console.log(`wrangler dev ready in ${server.startupMs} ms (first start, migrations applied)`);

  const create = await call(server, '/tasks', {
    method: 'POST',
    headers: { ...ADMIN, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'restart-tiny',
      modelTopology: TOPOLOGY,
      initialWeights: Buffer.from(initialWeights()).toString('base64'),
      rounds: { clientsPerRound: 3, overSelection: 1, deadlineSeconds: 3600 },
      plan: { epochs: 1, batchSize: 8, learningRate: 0.1 },
    }),
  });
  const created = await json(create);
  expect(create.status, JSON.stringify(created)).toBe(201);
  const taskId: string = created.id;

  const reg = await call(server, `/tasks/${taskId}/clients`, {
    method: 'POST',
    headers: { ...ADMIN, 'content-type': 'application/json' },
    body: JSON.stringify({ label: 'restart-client' }),
  });
  const creds = await json(reg);
  expect(reg.status, JSON.stringify(creds)).toBe(201);
  const client = { authorization: `Bearer ${creds.token as string}` };

  const checkin = await call(server, `/tasks/${taskId}/checkin`, { method: 'POST', headers: client });
  const assignment = await json(checkin);
  expect(checkin.status, JSON.stringify(assignment)).toBe(200);
  expect(assignment).toMatchObject({ status: 'assigned', taskId, round: 1, baseVersion: 0 });

  const taskBefore = await json(await call(server, `/tasks/${taskId}`, { headers: ADMIN }));
  expect(taskBefore.currentRound).toMatchObject({ round: 1, status: 'open', assigned: 1 });
  const manifestRes = await call(server, `/tasks/${taskId}/models/0`, { headers: ADMIN });
  const manifestBefore = await json(manifestRes);
  expect(manifestRes.status).toBe(200);
  const weightsRes = await call(server, `/tasks/${taskId}/models/0/weights`, { headers: client });
  expect(weightsRes.status).toBe(200);
  const weightsBefore = new Uint8Array(await weightsRes.arrayBuffer());
  const etag = weightsRes.headers.get('etag');
  expect(etag).toBe(`"${manifestBefore.contentHash as string}"`);
  // The server re-encodes the blob; the values are what we uploaded.
  const decoded = decodeTensors(weightsBefore).tensors;
  expect(decoded.map((t) => [t.name, t.shape])).toEqual([
    ['dense/kernel', [4, 3]],
    ['dense/bias', [3]],
  ]);
  expect(Float32Array.from(decoded.flatMap((t) => [...t.data]))).toEqual(FLAT);
  const roundsBefore = await json(await call(server, `/tasks/${taskId}/rounds`, { headers: ADMIN }));

  await stop(server);
  await expect(fetch(`${server.url}/v1/health`)).rejects.toThrow(); // really down

  // ---- second life, same state folder ---------------------------------------------------------
  server = await start(port, stateDir);
  console.log(`wrangler dev ready in ${server.startupMs} ms (restart, nothing to migrate)`);

  const list = await json(await call(server, '/tasks', { headers: ADMIN }));
  expect(list.tasks.map((t: { id: string }) => t.id)).toContain(taskId);

  // The whole task view, live round state from the Durable Object included.
  const taskAfter = await json(await call(server, `/tasks/${taskId}`, { headers: ADMIN }));
  expect(taskAfter).toEqual(taskBefore);

  // Version 0: same manifest, same immutable bytes under the same ETag.
  const manifestAfterRes = await call(server, `/tasks/${taskId}/models/0`, { headers: ADMIN });
  expect(manifestAfterRes.status).toBe(200);
  expect(manifestAfterRes.headers.get('cache-control')).toBe('no-cache'); // manifests gain evaluations; the weights below are the immutable part
  expect(await json(manifestAfterRes)).toEqual(manifestBefore);
  const weightsAfterRes = await call(server, `/tasks/${taskId}/models/0/weights`, { headers: client });
  expect(weightsAfterRes.status).toBe(200);
  expect(weightsAfterRes.headers.get('etag')).toBe(etag);
  expect(new Uint8Array(await weightsAfterRes.arrayBuffer())).toEqual(weightsBefore);
  const revalidate = await call(server, `/tasks/${taskId}/models/0/weights`, { headers: { ...client, 'if-none-match': etag! } });
  expect(revalidate.status).toBe(304);

  // The client's token still authenticates, and its assignment to round 1 still stands: checking
  // in again returns the same assignment instead of a new one.
  const again = await call(server, `/tasks/${taskId}/checkin`, { method: 'POST', headers: client });
  expect(again.status).toBe(200);
  expect(await json(again)).toEqual(assignment);
  const roundsAfter = await json(await call(server, `/tasks/${taskId}/rounds`, { headers: ADMIN }));
  expect(roundsAfter).toEqual(roundsBefore);
  expect(roundsAfter.rounds[0]).toMatchObject({ round: 1, status: 'open', assigned: 1 });

  // And auth is really enforced (the state survived, not the checks).
  expect((await call(server, `/tasks/${taskId}`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  expect(
    (await call(server, `/tasks/${taskId}/checkin`, { method: 'POST', headers: { authorization: `Bearer ${creds.clientId as string}.wrong` } })).status,
  ).toBe(401);

  await stop(server);
}, 240_000);
