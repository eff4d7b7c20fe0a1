/**
 * The upload budget under attack: bodies held open by one client's tokens must not block other
 * tasks, nor its own task for longer than the idle limit (1 s in these tests, 10 s by default).
 */
import { describe, expect, it } from 'vitest';
import { encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { denseTopology } from '../shared/topology.ts';
import { ADMIN, adminJson, api, base64, type Client, checkIn, createTask, encodeUpdate, randomDelta, registerClient, stubOf } from './helpers.ts';

const ROWS = 999;
const COLS = 1000;
const P = (ROWS + 1) * COLS; // 1M parameters: 4 MB updates
const TENSORS = [
  { name: 'dense/kernel', shape: [ROWS, COLS] },
  { name: 'dense/bias', shape: [COLS] },
];

async function bigTask(clientsPerRound: number): Promise<string> {
  const res = await adminJson('/tasks', 'POST', {
    name: 'big',
    modelTopology: denseTopology(ROWS, [{ name: 'dense', units: COLS }]),
    initialWeights: base64(encodeTensors(splitFlat(TENSORS, new Float32Array(P)))),
    rounds: { clientsPerRound, overSelection: 1, deadlineSeconds: 600 },
  });
  const body = await res.json<any>();
  if (res.status !== 201) throw new Error(JSON.stringify(body));
  return body.id;
}

function bigUpdate(seed: number): Uint8Array {
  const delta = new Float32Array(P);
  delta[seed] = 0.5;
  return encodeTensors(splitFlat(TENSORS, delta), { 'fedge.base_version': '0', 'fedge.num_examples': '10' });
}

/**
 * An upload that declares `declared` bytes, sends 8 and then holds the connection open: the attack
 * of the issue. Resolves to the response whenever the server gives one.
 */
function stalledUpload(taskId: string, client: Client, declared: number): Promise<{ status: number; code: string; ms: number }> {
  const { readable, writable } = new FixedLengthStream(declared);
  const writer = writable.getWriter();
  void writer.write(new Uint8Array(8)).catch(() => {});
  const t = Date.now();
  return api(`/tasks/${taskId}/rounds/1/update`, {
    method: 'PUT',
    headers: { ...client.auth, 'content-type': 'application/octet-stream' },
    body: readable,
  }).then(async (res) => ({
    status: res.status,
    code: (await res.json<any>()).error?.code,
    ms: Date.now() - t,
  }));
}

async function liveRound(taskId: string) {
  return (await (await api(`/tasks/${taskId}`, { headers: ADMIN })).json<any>()).currentRound;
}

describe('one client cannot starve the others', () => {
  it('refuses a client that was not assigned before reading its body, and does not count it against the round', async () => {
    const taskId = await bigTask(20);
    const stranger = await registerClient(taskId);
    const results = await Promise.all(Array.from({ length: 16 }, () => stalledUpload(taskId, stranger, 4_000_000)));
    for (const r of results) expect([r.status, r.code]).toEqual([409, 'not_assigned']);
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(900); // answered without waiting for bodies or the idle limit
    expect(await liveRound(taskId)).toMatchObject({ accepted: 0, rejected: 0, rejectedByCode: {} });
  });

  it('lets one upload per client in at a time, keeps one task’s stalled uploads from blocking another task, and cuts them off at the idle limit', async () => {
    const taskA = await bigTask(20);
    const attackers: Client[] = [];
    for (let i = 0; i < 16; i++) {
      const c = await registerClient(taskA);
      expect((await checkIn(taskA, c)).body.status).toBe('assigned');
      attackers.push(c);
    }
    // 16 assigned clients of task A each hold a 4 MB upload open: task A's 64 MiB budget is full.
    const stalled = attackers.map((c) => stalledUpload(taskA, c, 4_000_000));
    await new Promise((r) => setTimeout(r, 200));
    // A second upload from the same client is refused at once (the SDK retries after Retry-After).
    const second = await stalledUpload(taskA, attackers[0]!, 4_000_000);
    expect([second.status, second.code]).toEqual([429, 'upload_in_progress']);
    expect(second.ms).toBeLessThan(900);

    // Another task's client submits at once, while all of task A's bodies are stalled.
    const { id: taskB } = await createTask({ clientsPerRound: 2 });
    const b = await registerClient(taskB);
    await checkIn(taskB, b);
    const t = Date.now();
    const res = await api(`/tasks/${taskB}/rounds/1/update`, {
      method: 'PUT',
      headers: { ...b.auth, 'content-type': 'application/octet-stream' },
      body: encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 4 }),
    });
    expect(res.status).toBe(200);
    expect(Date.now() - t).toBeLessThan(900);

    // Task A's own honest client waits for room; the stalled uploads are cut off at the idle limit
    // (408, counted), and it gets in well within the 5 s queue limit.
    const honest = await registerClient(taskA);
    await checkIn(taskA, honest);
    const h = await api(`/tasks/${taskA}/rounds/1/update`, {
      method: 'PUT',
      headers: { ...honest.auth, 'content-type': 'application/octet-stream' },
      body: bigUpdate(3),
    });
    expect([h.status, (await h.json<any>()).numExamples]).toEqual([200, 10]);
    const cut = await Promise.all(stalled);
    for (const r of cut) expect([r.status, r.code]).toEqual([408, 'upload_timeout']);
    expect(Math.min(...cut.map((r) => r.ms))).toBeGreaterThanOrEqual(900);
    expect(Math.max(...cut.map((r) => r.ms))).toBeLessThan(4_000);
    expect(await liveRound(taskA)).toMatchObject({ accepted: 1, rejectedByCode: { upload_timeout: 16 } });
    // A cut-off client retries with a whole body and is accepted.
    const retry = await api(`/tasks/${taskA}/rounds/1/update`, {
      method: 'PUT',
      headers: { ...attackers[1]!.auth, 'content-type': 'application/octet-stream' },
      body: bigUpdate(4),
    });
    expect(retry.status).toBe(200);
  }, 30_000);

  it('gives an admission back when its body never comes (the edge died between the two calls)', async () => {
    const { id } = await createTask({ clientsPerRound: 2 });
    const c = await registerClient(id);
    await checkIn(id, c);
    const first = await stubOf(id).admitUpload(c.clientId, 1, 1_000);
    expect(first.ok).toBe(true);
    // Its slot is held: the same client is refused while the ticket lives...
    expect(await stubOf(id).admitUpload(c.clientId, 1, 1_000)).toMatchObject({ ok: false, code: 'upload_in_progress' });
    await new Promise((r) => setTimeout(r, 1_300));
    // ...and free again after the idle limit (1 s here); the stale ticket no longer admits a body.
    expect((await stubOf(id).admitUpload(c.clientId, 1, 1_000)).ok).toBe(true);
    const stale = await stubOf(id).submit(
      first.ok ? first.ticket : '',
      c.clientId,
      1,
      new Blob([encodeUpdate(randomDelta(2), { baseVersion: 0, numExamples: 3 })]).stream(),
      null,
    );
    expect(stale).toMatchObject({ ok: false, code: 'upload_timeout' });
  });
});
