import { runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeTensors } from '#protocol/safetensors.ts';
import {
  ADMIN,
  adminJson,
  api,
  base64,
  checkIn,
  downloadWeights,
  encodeUpdate,
  initialWeights,
  maxAbsDiff,
  randomDelta,
  registerClient,
  split,
  stubOf,
  submit,
  TOPOLOGY,
} from './helpers.ts';

describe('FedBuff (asynchronous, Nguyen et al. 2022)', () => {
  it('publishes every K updates, weighting each by n·(1 + staleness)^−a, and refuses updates staler than the bound', async () => {
    const a = 0.5;
    const eta = 0.8;
    const res = await adminJson('/tasks', 'POST', {
      name: 'fedbuff',
      modelTopology: TOPOLOGY,
      initialWeights: base64(encodeTensors(split(initialWeights()))),
      rounds: { clientsPerRound: 99, deadlineSeconds: 1 }, // ignored: the buffer size is the goal, and there is no deadline
      strategy: { name: 'fedbuff', bufferSize: 3, stalenessExponent: a, maxStaleness: 1, serverLearningRate: eta },
    });
    const task = await res.json<any>();
    expect(res.status).toBe(201);
    expect(task.rounds).toMatchObject({ clientsPerRound: 3, minClients: 3 });
    const [c1, c2, c3, late, tooLate, c5, c6, c7, c8] = await Promise.all(Array.from({ length: 9 }, () => registerClient(task.id)));
    const u = (i: number) => randomDelta(50 + i, 0.2);

    // Buffer 1 (version 0): five clients join; no cap, no deadline.
    for (const c of [c1, c2, c3, late, tooLate]) expect((await checkIn(task.id, c!)).body).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0 });
    expect((await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>()).currentRound).toMatchObject({ assigned: 5, deadlineAt: null });
    for (const [i, c] of [c1, c2, c3].entries())
      expect((await submit(task.id, c!, 1, encodeUpdate(u(i), { baseVersion: 0, numExamples: 10 * (i + 1) }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(task.id));
    const w1 = await downloadWeights(task.id, 1);
    // No staleness: w1 = w0 + η Σ nΔ / Σ n.
    const exp1 = Float64Array.from(initialWeights(), (w, j) => w + (eta * (10 * u(0)[j]! + 20 * u(1)[j]! + 30 * u(2)[j]!)) / 60);
    expect(maxAbsDiff(w1, exp1)).toBeLessThanOrEqual(1e-6);

    // Buffer 2 (version 1): `late` submits its buffer-1 update (staleness 1), two fresh clients fill the buffer.
    const lateBody = encodeUpdate(u(3), { baseVersion: 0, numExamples: 40 });
    const lateAck = await submit(task.id, late!, 1, lateBody);
    expect(lateAck.status).toBe(200);
    // Its update now counts in buffer 2: it may not join buffer 2 again (one update per client per buffer).
    expect((await checkIn(task.id, late!)).body).toMatchObject({ status: 'retry_later', reason: 'already_submitted' });
    expect((await submit(task.id, late!, 2, encodeUpdate(u(9), { baseVersion: 1, numExamples: 40 }))).body.error.code).toBe('duplicate_conflict');
    for (const c of [c5, c6]) expect((await checkIn(task.id, c!)).body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
    // A fresh client must train on the current version.
    expect((await submit(task.id, c5!, 2, encodeUpdate(u(4), { baseVersion: 0, numExamples: 5 }))).body.error.code).toBe('base_version_mismatch');
    expect((await submit(task.id, c5!, 2, encodeUpdate(u(4), { baseVersion: 1, numExamples: 5 }))).status).toBe(200);
    expect((await submit(task.id, c6!, 2, encodeUpdate(u(5), { baseVersion: 1, numExamples: 15 }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(task.id));
    const w2 = await downloadWeights(task.id, 2);
    const s = (1 + 1) ** -a;
    const exp2 = Float64Array.from(w1, (w, j) => w + (eta * (40 * s * u(3)[j]! + 5 * u(4)[j]! + 15 * u(5)[j]!)) / 60);
    expect(maxAbsDiff(w2, exp2)).toBeLessThanOrEqual(1e-6);

    // The stale client's retry still gets its ack back; the other buffer-1 client is now 2 versions behind: refused.
    // (Before that: while `late`'s stale update sat in buffer 2 it could not take a second place there.)
    expect((await submit(task.id, late!, 1, lateBody)).body).toEqual(lateAck.body);
    const refused = await submit(task.id, tooLate!, 1, encodeUpdate(u(6), { baseVersion: 0, numExamples: 10 }));
    expect([refused.status, refused.body.error.code]).toEqual([409, 'stale_update']);

    // Buffer 3 carries on with fresh clients; the refused update is not in it.
    for (const [i, c] of [c7, c8].entries()) {
      await checkIn(task.id, c!);
      expect((await submit(task.id, c!, 3, encodeUpdate(u(7 + i), { baseVersion: 2, numExamples: 1 }))).status).toBe(200);
    }
    const live = await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>();
    expect(live.currentRound).toMatchObject({ round: 3, accepted: 2, baseVersion: 2, rejectedByCode: { stale_update: 1 } });
    const v2 = await (await api(`/tasks/${task.id}/models/2`, { headers: ADMIN })).json<any>();
    expect(v2.strategy).toEqual({ name: 'fedbuff', params: { bufferSize: 3, stalenessExponent: a, maxStaleness: 1, serverLearningRate: eta } });
  });
});
