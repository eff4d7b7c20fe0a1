/**
 * The starvation attack of issue 9, over real sockets against a real `wrangler dev` (default
 * limits: a stalled body is cut off after 10 s): one client's tokens hold uploads open that declare
 * 4 MB and send 8 bytes; another task's client must still submit, every time.
 */
import { request } from 'node:http';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { denseTopology } from '../shared/topology.ts';

const url = inject('fedgeUrl');
const admin = { authorization: `Bearer ${inject('fedgeAdminToken')}`, 'content-type': 'application/json' };

async function json(path: string, init: RequestInit = {}): Promise<{ http: number; body: any }> {
  const res = await fetch(`${url}/v1${path}`, { ...init, headers: { ...admin, ...(init.headers as Record<string, string>) } });
  return { http: res.status, body: await res.json() };
}

async function task(inputs: number, units: number, clientsPerRound: number): Promise<string> {
  const tensors = [
    { name: 'dense/kernel', shape: [inputs, units] },
    { name: 'dense/bias', shape: [units] },
  ];
  const weights = encodeTensors(splitFlat(tensors, new Float32Array(inputs * units + units)));
  const r = await json('/tasks', {
    method: 'POST',
    body: JSON.stringify({
      name: 'flood',
      modelTopology: denseTopology(inputs, [{ name: 'dense', units }]),
      initialWeights: Buffer.from(weights).toString('base64'),
      rounds: { clientsPerRound, overSelection: 1, deadlineSeconds: 600 },
    }),
  });
  expect(r.http).toBe(201);
  return r.body.id;
}

async function client(taskId: string): Promise<string> {
  return (await json(`/tasks/${taskId}/clients`, { method: 'POST', body: '{}' })).body.token;
}

async function checkIn(taskId: string, token: string): Promise<any> {
  return (await fetch(`${url}/v1/tasks/${taskId}/checkin`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json();
}

const open = new Set<ReturnType<typeof request>>();
afterAll(() => {
  for (const req of open) req.destroy();
});

/** PUT declaring `declared` bytes, sending 8, never finishing; resolves when the server answers. */
function stalledUpload(taskId: string, token: string, declared: number): Promise<{ status: number; code: string; ms: number }> {
  const t = Date.now();
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/tasks/${taskId}/rounds/1/update`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': declared },
    });
    open.add(req);
    req.on('error', () => {}); // the server closes the socket once it has answered
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        req.destroy();
        open.delete(req);
        try {
          resolve({ status: res.statusCode!, code: JSON.parse(text).error?.code, ms: Date.now() - t });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.write(Buffer.alloc(8));
  });
}

describe('held-open uploads (real sockets, wrangler dev)', () => {
  it('cannot block another task, are refused before their body when unassigned, and are cut off after 10 s', async () => {
    const taskA = await task(999, 1000, 10); // 1M parameters: 4 MB updates
    const taskB = await task(4, 3, 1);
    const attacker = await client(taskA);

    // The reported attack: 16 uploads without checking in. Now each is refused before its body is read.
    const unassigned = await Promise.all(Array.from({ length: 16 }, () => stalledUpload(taskA, attacker, 4_000_000)));
    for (const r of unassigned) expect([r.status, r.code]).toEqual([409, 'not_assigned']);
    expect(Math.max(...unassigned.map((r) => r.ms))).toBeLessThan(3_000);

    // Checked in, the attacker holds one upload open; a second at once is refused.
    expect((await checkIn(taskA, attacker)).status).toBe('assigned');
    const held = stalledUpload(taskA, attacker, 4_000_000);
    await new Promise((r) => setTimeout(r, 300));
    const second = await stalledUpload(taskA, attacker, 4_000_000);
    expect([second.status, second.code]).toEqual([429, 'upload_in_progress']);

    // Meanwhile another task's client submits six rounds in a row (the report: 0 of 6 got through).
    const honest = await client(taskB);
    const accepted: number[] = [];
    for (let round = 1; round <= 6; round++) {
      const a = await checkIn(taskB, honest);
      expect(a).toMatchObject({ status: 'assigned', round });
      const delta = Float32Array.from({ length: 15 }, (_, i) => (i - round) / 100);
      const body = encodeTensors(
        splitFlat(
          [
            { name: 'dense/kernel', shape: [4, 3] },
            { name: 'dense/bias', shape: [3] },
          ],
          delta,
        ),
        { 'fedge.base_version': String(a.baseVersion), 'fedge.num_examples': '5' },
      );
      const res = await fetch(`${url}/v1/tasks/${taskB}/rounds/${round}/update`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${honest}`, 'content-type': 'application/octet-stream' },
        body,
      });
      accepted.push(res.status);
      await res.arrayBuffer();
      for (let i = 0; i < 50 && (await json(`/tasks/${taskB}`)).body.currentVersion < round; i++) await new Promise((r) => setTimeout(r, 100));
    }
    expect(accepted).toEqual([200, 200, 200, 200, 200, 200]);

    // The held upload is cut off at the idle limit (10 s by default) with 408.
    const cut = await held;
    expect([cut.status, cut.code]).toEqual([408, 'upload_timeout']);
    expect(cut.ms).toBeGreaterThanOrEqual(9_500);
    expect(cut.ms).toBeLessThan(20_000);
    const live = (await json(`/tasks/${taskA}`)).body;
    expect(live.currentRound).toMatchObject({ assigned: 1, accepted: 0, rejectedByCode: { upload_timeout: 1 } });
  }, 60_000);
});
