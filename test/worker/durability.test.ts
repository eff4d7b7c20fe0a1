import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_EVERY } from '../../aggregator/src/master/group-commit.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  ADMIN,
  api,
  type Client,
  checkIn,
  createTask,
  downloadWeights,
  encodeUpdate,
  fedavgReference,
  initialWeights,
  maxAbsDiff,
  randomDelta,
  registerClient,
  stubOf,
  submit,
} from './helpers.ts';

function storedUpdateSeqs(taskId: string): Promise<number[]> {
  return runInDurableObject(stubOf(taskId), async (_o: TaskAggregator, state) =>
    state.storage.sql
      .exec<{ seq: number }>('SELECT DISTINCT seq FROM update_chunks ORDER BY seq')
      .toArray()
      .map((r) => r.seq),
  );
}

async function joinAll(taskId: string, n: number): Promise<Client[]> {
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = await registerClient(taskId);
    expect((await checkIn(taskId, c)).body.status).toBe('assigned');
    clients.push(c);
  }
  return clients;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('exactly-once ingestion', () => {
  it('returns the first ack for an identical retry and 409 for a different body; the update counts once', async () => {
    const { id } = await createTask({ clientsPerRound: 2 });
    const [a, b] = await joinAll(id, 2);
    const body = encodeUpdate(randomDelta(5), { baseVersion: 0, numExamples: 10 });
    const first = await submit(id, a!, 1, body);
    expect(first.status).toBe(200);
    expect(first.headers.get('fedge-replayed')).toBeNull();
    const retry = await submit(id, a!, 1, body);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    expect(retry.headers.get('fedge-replayed')).toBe('true');
    const conflict = await submit(id, a!, 1, encodeUpdate(randomDelta(6), { baseVersion: 0, numExamples: 10 }));
    expect([conflict.status, conflict.body.error.code]).toEqual([409, 'duplicate_conflict']);
    const live = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(live.currentRound).toMatchObject({ accepted: 1, status: 'open' });

    const other = randomDelta(7);
    await submit(id, b!, 1, encodeUpdate(other, { baseVersion: 0, numExamples: 30 }));
    await runDurableObjectAlarm(stubOf(id));
    expect(
      maxAbsDiff(
        await downloadWeights(id, 1),
        fedavgReference(initialWeights(), [
          { delta: randomDelta(5), n: 10 },
          { delta: other, n: 30 },
        ]),
      ),
    ).toBeLessThanOrEqual(1e-6);
    // After the round closed, the retry of an acknowledged update still gets its ack back.
    const late = await submit(id, a!, 1, body);
    expect([late.status, late.body]).toEqual([200, first.body]);
  });
});

describe('concurrent submissions', () => {
  it('accepts simultaneous updates with distinct sequence numbers and sums each once', async () => {
    const n = 12;
    const { id } = await createTask({ clientsPerRound: n });
    const clients = await joinAll(id, n);
    const updates = clients.map((_, i) => ({ delta: randomDelta(300 + i), n: i + 1 }));
    const results = await Promise.all(clients.map((c, i) => submit(id, c, 1, encodeUpdate(updates[i]!.delta, { baseVersion: 0, numExamples: updates[i]!.n }))));
    expect(results.map((r) => r.status)).toEqual(Array(n).fill(200));
    expect(results.map((r) => r.body.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    await runDurableObjectAlarm(stubOf(id));
    expect(maxAbsDiff(await downloadWeights(id, 1), fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
  });
});

describe('eviction and restart', () => {
  it('survives evictions mid-round: every acknowledged update counts once, bit-identical to an uninterrupted run', async () => {
    const n = CHECKPOINT_EVERY + 9;
    const updates = Array.from({ length: n }, (_, i) => ({ delta: randomDelta(100 + i, 0.5), n: 1 + ((i * 7) % 13) }));
    const run = async (evict: boolean) => {
      const { id } = await createTask({ clientsPerRound: n });
      const clients = await joinAll(id, n);
      const acks = [];
      for (let i = 0; i < n; i++) {
        const r = await submit(id, clients[i]!, 1, encodeUpdate(updates[i]!.delta, { baseVersion: 0, numExamples: updates[i]!.n }));
        expect(r.status).toBe(200);
        acks.push(r.body);
        if (evict && (i === 3 || i === CHECKPOINT_EVERY + 2)) {
          if (i === CHECKPOINT_EVERY + 2) expect(await storedUpdateSeqs(id)).toEqual([CHECKPOINT_EVERY + 1, CHECKPOINT_EVERY + 2, CHECKPOINT_EVERY + 3]);
          await evictDurableObject(stubOf(id));
          // An acknowledged update's retry still returns its ack after the restart.
          const again = await submit(id, clients[i]!, 1, encodeUpdate(updates[i]!.delta, { baseVersion: 0, numExamples: updates[i]!.n }));
          expect(again.body).toEqual(r.body);
        }
      }
      if (evict) await evictDurableObject(stubOf(id));
      await runDurableObjectAlarm(stubOf(id));
      return { id, weights: await downloadWeights(id, 1) };
    };
    const interrupted = await run(true);
    const clean = await run(false);
    expect(maxAbsDiff(interrupted.weights, fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
    expect(Array.from(interrupted.weights)).toEqual(Array.from(clean.weights));
    const manifest = await (await api(`/tasks/${interrupted.id}/models/1`, { headers: ADMIN })).json<any>();
    expect(manifest).toMatchObject({ participants: n, numExamples: updates.reduce((a, u) => a + u.n, 0) });
    // The finished round's bulky data is gone from the object.
    expect(await storedUpdateSeqs(interrupted.id)).toEqual([]);
  });

  it('keeps tasks, assignments and versions across a restart of the object', async () => {
    const { id } = await createTask({ clientsPerRound: 1 });
    const [a] = await joinAll(id, 1);
    await evictDurableObject(stubOf(id));
    expect((await checkIn(id, a!)).body).toMatchObject({ status: 'assigned', round: 1 });
    await submit(id, a!, 1, encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 3 }));
    await runDurableObjectAlarm(stubOf(id));
    await evictDurableObject(stubOf(id));
    const task = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(task).toMatchObject({ currentVersion: 1, currentRound: { round: 2, baseVersion: 1 } });
  });
});

describe('deadline alarm', () => {
  it('closes at the deadline when the minimum was reached', async () => {
    const { id } = await createTask({ clientsPerRound: 3, minClients: 2, deadlineSeconds: 1 });
    const [a, b] = await joinAll(id, 3);
    await submit(id, a!, 1, encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 4 }));
    await submit(id, b!, 1, encodeUpdate(randomDelta(2), { baseVersion: 0, numExamples: 6 }));
    // Before the deadline the alarm changes nothing.
    await runDurableObjectAlarm(stubOf(id));
    expect((await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>()).currentRound).toMatchObject({ round: 1, status: 'open', accepted: 2 });
    await sleep(1_100);
    await runDurableObjectAlarm(stubOf(id));
    const w = await downloadWeights(id, 1);
    expect(
      maxAbsDiff(
        w,
        fedavgReference(initialWeights(), [
          { delta: randomDelta(1), n: 4 },
          { delta: randomDelta(2), n: 6 },
        ]),
      ),
    ).toBeLessThanOrEqual(1e-6);
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ status: 'closed', closeReason: 'deadline', accepted: 2, assigned: 3, resultVersion: 1 });
    // A second firing (alarms fire at least once) publishes nothing more.
    await runDurableObjectAlarm(stubOf(id));
    const versions = await (await api(`/tasks/${id}/models`, { headers: ADMIN })).json<any>();
    expect(versions.versions.map((v: any) => v.version)).toEqual([1, 0]);
  });

  it('abandons the round below the minimum and opens a new one on the same version', async () => {
    const { id } = await createTask({ clientsPerRound: 3, minClients: 2, deadlineSeconds: 1 });
    const [a, b] = await joinAll(id, 2);
    const accepted = encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 4 });
    expect((await submit(id, a!, 1, accepted)).status).toBe(200);
    await sleep(1_100);
    await runDurableObjectAlarm(stubOf(id));
    await runDurableObjectAlarm(stubOf(id));
    const task = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(task).toMatchObject({ currentVersion: 0, currentRound: { round: 2, status: 'open', baseVersion: 0, accepted: 0, assigned: 0 } });
    const rounds = await (await api(`/tasks/${id}/rounds`, { headers: ADMIN })).json<any>();
    expect(rounds.rounds.map((r: any) => [r.round, r.status])).toEqual([
      [2, 'open'],
      [1, 'abandoned'],
    ]);
    expect(rounds.rounds[1]).toMatchObject({ accepted: 1, resultVersion: null, closeReason: 'below_minimum' });
    // The late client is told the round was abandoned, and so is a retry of the update it had
    // accepted: its update was discarded, so no "replayed" acknowledgement may claim otherwise.
    expect(await submit(id, b!, 1, encodeUpdate(randomDelta(9), { baseVersion: 0, numExamples: 4 }))).toMatchObject({
      status: 409,
      body: { error: { code: 'round_abandoned' } },
    });
    const retry = await submit(id, a!, 1, accepted);
    expect([retry.status, retry.body.error?.code, retry.headers.get('fedge-replayed')]).toEqual([409, 'round_abandoned', null]);
    // In the next round the same client starts afresh.
    expect((await checkIn(id, a!)).body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 0 });
    expect(Array.from(await downloadWeights(id, 0))).toEqual(Array.from(initialWeights()));
    expect((await api(`/tasks/${id}/models/1`, { headers: ADMIN })).status).toBe(404);
  });
});

describe('publishing after a crash', () => {
  for (const fault of ['after_blob', 'after_d1'] as const) {
    it(`leaves no half-published version when it fails ${fault.replace('_', ' ')}, and completes on the next attempt`, async () => {
      const { id } = await createTask({ clientsPerRound: 2 });
      const [a, b] = await joinAll(id, 2);
      const ups = [
        { delta: randomDelta(21), n: 2 },
        { delta: randomDelta(22), n: 5 },
      ];
      await submit(id, a!, 1, encodeUpdate(ups[0]!.delta, { baseVersion: 0, numExamples: 2 }));
      await runInDurableObject(stubOf(id), (o: TaskAggregator) => {
        o.faults.arm(fault, 'always'); // until the instance ends, as a crash that recurs
      });
      await submit(id, b!, 1, encodeUpdate(ups[1]!.delta, { baseVersion: 0, numExamples: 5 }));
      await expect(runDurableObjectAlarm(stubOf(id))).rejects.toThrow(/injected fault/);
      const during = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
      expect(during.currentRound).toMatchObject({ round: 1, status: 'closing' });
      if (fault === 'after_blob') expect((await api(`/tasks/${id}/models/1`, { headers: ADMIN })).status).toBe(404);
      expect((await checkIn(id, a!)).body).toMatchObject({ status: 'retry_later' });
      // The object restarts (the fault flag is gone with the instance) and the alarm retries.
      await evictDurableObject(stubOf(id));
      await runDurableObjectAlarm(stubOf(id));
      expect(maxAbsDiff(await downloadWeights(id, 1), fedavgReference(initialWeights(), ups))).toBeLessThanOrEqual(1e-6);
      const task = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
      expect(task).toMatchObject({ currentVersion: 1, currentRound: { round: 2, baseVersion: 1 } });
      const rounds = await (await api(`/tasks/${id}/rounds`, { headers: ADMIN })).json<any>();
      expect(rounds.rounds.map((r: any) => [r.round, r.status])).toEqual([
        [2, 'open'],
        [1, 'closed'],
      ]);
      const versions = await (await api(`/tasks/${id}/models`, { headers: ADMIN })).json<any>();
      expect(versions.versions.map((v: any) => v.version)).toEqual([1, 0]);
    });
  }
});

describe('a failed group commit', () => {
  it('acknowledges nothing, leaves no trace, and the retry is accepted and counted once', async () => {
    const { id } = await createTask({ clientsPerRound: 2 });
    const [a, b] = await joinAll(id, 2);
    const ups = [
      { delta: randomDelta(41), n: 3 },
      { delta: randomDelta(42), n: 9 },
    ];
    await runInDurableObject(stubOf(id), (o: TaskAggregator) => {
      o.faults.arm('commit');
    });
    const body = encodeUpdate(ups[0]!.delta, { baseVersion: 0, numExamples: 3 });
    const failed = await submit(id, a!, 1, body);
    expect([failed.status, failed.body.error.code]).toEqual([500, 'internal_error']);
    const live = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(live.currentRound).toMatchObject({ accepted: 0 });
    const ledger = await runInDurableObject(
      stubOf(id),
      async (_o: TaskAggregator, state) => state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM ledger').one().n,
    );
    expect(ledger).toBe(0);
    expect((await submit(id, a!, 1, body)).status).toBe(200);
    expect((await submit(id, b!, 1, encodeUpdate(ups[1]!.delta, { baseVersion: 0, numExamples: 9 }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));
    expect(maxAbsDiff(await downloadWeights(id, 1), fedavgReference(initialWeights(), ups))).toBeLessThanOrEqual(1e-6);
  });
});
