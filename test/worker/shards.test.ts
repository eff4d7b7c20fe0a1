/**
 * Client-sharded rounds on the real runtime: the round spread over S RoundShard objects, each with
 * its own SQLite, ledger and partial sum; the master merges at close. Every request of a client
 * goes to its shard (the master's own ledger stays empty).
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeTensors } from '#protocol/safetensors.ts';
import type { RoundShard } from '../../aggregator/src/master/round-shard.ts';
import { shardName, shardOf } from '../../aggregator/src/master/shards.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  ADMIN,
  adminJson,
  api,
  base64,
  type Client,
  checkIn,
  clippedMean,
  createTask,
  downloadWeights,
  encodeUpdate,
  expectNoise,
  fedavgReference,
  initialWeights,
  maxAbsDiff,
  randomDelta,
  registerClient,
  split,
  stubOf,
  submit,
  type TaskOptions,
  TOPOLOGY,
} from './helpers.ts';

function shardStub(taskId: string, index: number) {
  return env.SHARDS.get(env.SHARDS.idFromName(shardName(taskId, index)));
}

/** Registers clients until each of the `shards` shards has `perShard` of them; returns them grouped by shard. */
async function clientsPerShard(taskId: string, shards: number, perShard: number): Promise<Client[][]> {
  const groups: Client[][] = Array.from({ length: shards }, () => []);
  while (groups.some((g) => g.length < perShard)) {
    const c = await registerClient(taskId);
    const g = groups[shardOf(c.clientId, shards)]!;
    if (g.length < perShard) g.push(c);
  }
  return groups;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the master has ended `round` (the shards' reports are throttled and sent after the
 * ack; the master's alarm then closes it), flushing the shards' report alarms.
 */
async function untilEnded(taskId: string, shards: number, round = 1): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const live = await stubOf(taskId).status();
    if (live && live.round > round) return;
    // The master's close runs at its own alarm (and retries there); a shard's held-back report at its alarm.
    if (live?.status === 'open') for (let s = 0; s < shards; s++) await runDurableObjectAlarm(shardStub(taskId, s));
    await sleep(50);
  }
  throw new Error(`the master never ended round ${round}`);
}

async function shardedTask(shards: number, rules: TaskOptions) {
  return createTask(rules, initialWeights(), { shards });
}

async function joinAndSubmit(taskId: string, clients: Client[], seed: number): Promise<{ delta: Float32Array; n: number }[]> {
  const updates = [];
  for (const [i, c] of clients.entries()) {
    const ci = await checkIn(taskId, c);
    expect(ci.body).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0 });
    const u = { delta: randomDelta(seed + i), n: 5 + i };
    const r = await submit(taskId, c, 1, encodeUpdate(u.delta, { baseVersion: 0, numExamples: u.n, metrics: { loss: i } }));
    expect(r.status).toBe(200);
    updates.push(u);
  }
  return updates;
}

describe('client-sharded rounds', { timeout: 30_000 }, () => {
  it('spreads a round over 4 shards, merges their partial sums and publishes the FedAvg of every update', async () => {
    // Prepare: 3 clients on each of 4 shards; the same 12 updates into an unsharded task.
    const { id, task } = await shardedTask(4, { clientsPerRound: 12 });
    expect(task.shards).toBe(4);
    const groups = await clientsPerShard(id, 4, 3);
    const { id: plain } = await createTask({ clientsPerRound: 12 });

    // Execute
    const updates = await joinAndSubmit(id, groups.flat(), 40);
    const plainClients = await Promise.all(updates.map(() => registerClient(plain)));
    await joinAndSubmit(plain, plainClients, 40);
    await untilEnded(id, 4);
    await runDurableObjectAlarm(stubOf(plain));

    // Assert: the FedAvg of all 12, and the unsharded version to within float32 rounding of the merge order.
    const published = await downloadWeights(id, 1);
    expect(maxAbsDiff(published, fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(published, await downloadWeights(plain, 1))).toBeLessThanOrEqual(2 ** -22);
    const manifest = await (await api(`/tasks/${id}/models/1`, { headers: ADMIN })).json<any>();
    expect(manifest).toMatchObject({ version: 1, round: 1, participants: 12, numExamples: updates.reduce((a, u) => a + u.n, 0) });
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ status: 'closed', assigned: 12, accepted: 12, rejected: 0, closeReason: 'goal_reached' });
    expect(round.participants.map((p: any) => p.clientId).sort()).toEqual(
      groups
        .flat()
        .map((c) => c.clientId)
        .sort(),
    );
    // No client reached the master: its ledger holds nothing; each shard holds its own 3 rows.
    expect(await runInDurableObject(stubOf(id), async (o: TaskAggregator) => o.ledger.rowsOf(1).length)).toBe(0);
    for (let s = 0; s < 4; s++) {
      const rows = await runInDurableObject(shardStub(id, s), async (o: RoundShard) => o.ledger.rowsOf(1).map((r) => r.client_id));
      expect(rows.sort()).toEqual(groups[s]!.map((c) => c.clientId).sort());
    }
    // The shards heard of round 2 from the master's push, on version 1.
    expect((await checkIn(id, groups[2]![0]!)).body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
    const view = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(view).toMatchObject({ shards: 4, currentVersion: 1, currentRound: { round: 2, status: 'open' } });
  });

  it('keeps exactly-once per shard: a retry is replayed, a different body conflicts, an unassigned client is refused', async () => {
    const { id } = await shardedTask(2, { clientsPerRound: 4 });
    const groups = await clientsPerShard(id, 2, 2);
    const [a, b] = groups[0]!;
    const [c, d] = groups[1]!;
    for (const x of [a!, c!]) expect((await checkIn(id, x)).body.status).toBe('assigned');
    const body = encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 10 });
    const first = await submit(id, a!, 1, body);
    const retry = await submit(id, a!, 1, body);
    expect([retry.status, retry.headers.get('fedge-replayed'), retry.body]).toEqual([200, 'true', first.body]);
    const conflict = await submit(id, a!, 1, encodeUpdate(randomDelta(2), { baseVersion: 0, numExamples: 10 }));
    expect([conflict.status, conflict.body.error.code]).toEqual([409, 'duplicate_conflict']);
    const stranger = await submit(id, b!, 1, body);
    expect([stranger.status, stranger.body.error.code]).toEqual([409, 'not_assigned']);
    const stale = await submit(id, c!, 1, encodeUpdate(randomDelta(3), { baseVersion: 7, numExamples: 10 }));
    expect([stale.status, stale.body.error.code]).toEqual([409, 'base_version_mismatch']);
    // The rejection is counted on c's shard and reaches the round's record at the close.
    for (const x of [b!, d!]) expect((await checkIn(id, x)).body.status).toBe('assigned');
    await submit(id, b!, 1, encodeUpdate(randomDelta(4), { baseVersion: 0, numExamples: 10 }));
    await submit(id, c!, 1, encodeUpdate(randomDelta(5), { baseVersion: 0, numExamples: 10 }));
    await submit(id, d!, 1, encodeUpdate(randomDelta(6), { baseVersion: 0, numExamples: 10 }));
    await untilEnded(id, 2);
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ status: 'closed', accepted: 4, rejectedByCode: { duplicate_conflict: 1, base_version_mismatch: 1 } });
  });

  it('loses no acknowledged update when a shard is evicted mid-round', async () => {
    const { id } = await shardedTask(2, { clientsPerRound: 6 });
    const groups = await clientsPerShard(id, 2, 3);
    const clients = [groups[0]![0]!, groups[1]![0]!, groups[0]![1]!, groups[1]![1]!, groups[0]![2]!, groups[1]![2]!];
    const updates = [];
    for (const [i, c] of clients.entries()) {
      expect((await checkIn(id, c)).body.status).toBe('assigned');
      const u = { delta: randomDelta(70 + i), n: 3 + i };
      expect((await submit(id, c, 1, encodeUpdate(u.delta, { baseVersion: 0, numExamples: u.n }))).status).toBe(200);
      updates.push(u);
      if (i === 2 || i === 3) await evictDurableObject(shardStub(id, i % 2));
    }
    await evictDurableObject(shardStub(id, 0));
    await untilEnded(id, 2);
    expect(maxAbsDiff(await downloadWeights(id, 1), fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
  });

  it('closes at the deadline with what the shards hold, the reports notwithstanding', async () => {
    const { id } = await shardedTask(2, { clientsPerRound: 6, minClients: 2, deadlineSeconds: 1 });
    const groups = await clientsPerShard(id, 2, 1);
    const updates = await joinAndSubmit(id, groups.flat(), 90);
    await sleep(1_100);
    await untilEnded(id, 2);
    expect(maxAbsDiff(await downloadWeights(id, 1), fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ status: 'closed', accepted: 2, closeReason: 'deadline' });
  });

  it('closes without a shard that cannot be sealed, after the grace period, when the others hold the minimum', async () => {
    const { id } = await shardedTask(2, { clientsPerRound: 4, minClients: 2 });
    const [down, up] = await clientsPerShard(id, 2, 2);
    await joinAndSubmit(id, down!, 10);
    await runInDurableObject(shardStub(id, 0), async (o: RoundShard) => o.faults.arm('seal', 'always'));
    const kept = await joinAndSubmit(id, up!, 20);
    // The close waits for the shard through the grace period (1 s here), then goes on without it.
    const t0 = Date.now();
    await untilEnded(id, 2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);

    // Then it publishes shard 1's two updates; shard 0's reported two are counted as unreachable.
    expect(maxAbsDiff(await downloadWeights(id, 1), fedavgReference(initialWeights(), kept))).toBeLessThanOrEqual(1e-6);
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ status: 'closed', accepted: 2, rejectedByCode: { shard_unreachable: 2 } });
    expect(round.participants.map((p: any) => p.clientId).sort()).toEqual(up!.map((c) => c.clientId).sort());

    // The shard comes back: its clients join round 2, and its round-1 updates are late (a retry is not answered with their acks).
    await runInDurableObject(shardStub(id, 0), async (o: RoundShard) => {
      (o.faults as any).armed.clear();
    });
    expect((await checkIn(id, down![0]!)).body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
    const late = await submit(id, down![1]!, 1, encodeUpdate(randomDelta(11), { baseVersion: 0, numExamples: 6 }));
    expect([late.status, late.body.error.code]).toEqual([409, 'round_closed']);
  });

  it('abandons the round when the shards that answer hold fewer than the minimum', async () => {
    const { id } = await shardedTask(2, { clientsPerRound: 4, minClients: 3 });
    const [down, up] = await clientsPerShard(id, 2, 2);
    await joinAndSubmit(id, down!, 10);
    await runInDurableObject(shardStub(id, 1), async (o: RoundShard) => o.faults.arm('seal', 'always'));
    await joinAndSubmit(id, up!, 20);
    await untilEnded(id, 2);
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ status: 'abandoned', accepted: 2, closeReason: 'below_minimum', resultVersion: null });
    const task = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(task).toMatchObject({ currentVersion: 0, currentRound: { round: 2, status: 'open', baseVersion: 0 } });
    // A retry of an update of the abandoned round is told so, not replayed.
    const retry = await submit(id, down![0]!, 1, encodeUpdate(randomDelta(10), { baseVersion: 0, numExamples: 5 }));
    expect([retry.status, retry.body.error.code]).toEqual([409, 'round_abandoned']);
  });

  it('stops assigning once the task is stopped, and deleting the task empties every shard', async () => {
    const { id } = await shardedTask(2, { clientsPerRound: 2 });
    const [a, b] = (await clientsPerShard(id, 2, 1)).flat();
    await joinAndSubmit(id, [a!, b!], 30);
    await untilEnded(id, 2);
    expect((await adminJson(`/tasks/${id}/stop`, 'POST')).status).toBe(200);
    const refused = await api(`/tasks/${id}/checkin`, { method: 'POST', headers: a!.auth });
    expect([refused.status, (await refused.json<any>()).error.code]).toEqual([409, 'task_stopped']);
    expect((await adminJson(`/tasks/${id}`, 'DELETE')).status).toBe(200);
    for (let s = 0; s < 2; s++) {
      const tables = await runInDurableObject(shardStub(id, s), async (_o: RoundShard, state) =>
        state.storage.sql.exec('SELECT name FROM sqlite_master').toArray(),
      );
      expect(tables).toEqual([]);
    }
  });
});

describe('differential privacy in a sharded round', () => {
  it('samples and clips on the shards, noises the merged sum once on the master, and records the release', async () => {
    const z = 0.5;
    const S = 1;
    const privacy = { mode: 'central', noiseMultiplier: z, clipNorm: S, samplingRate: 1, delta: 1e-5 };
    const { id, task } = await createTask({ clientsPerRound: 4, minClients: 1, deadlineSeconds: 1 }, initialWeights(), { shards: 2, privacy });
    expect(task.shards).toBe(2);
    const groups = await clientsPerShard(id, 2, 2);
    const deltas = [randomDelta(1, 5), randomDelta(2, 5), randomDelta(3, 0.01), randomDelta(4, 0.01)]; // two far above S
    for (const [i, c] of groups.flat().entries()) {
      expect((await checkIn(id, c)).body).toMatchObject({ status: 'assigned', round: 1 });
      expect((await submit(id, c, 1, encodeUpdate(deltas[i]!, { baseVersion: 0, numExamples: 10 + i }))).status).toBe(200);
    }
    // No goal under sampling: the round runs to its deadline.
    expect((await stubOf(id).status())?.status).toBe('open');
    await sleep(1_100);
    await untilEnded(id, 2);

    const w = await downloadWeights(id, 1);
    expectNoise(w, clippedMean(initialWeights(), deltas, S, 4), (z * S) / 4); // noised once, on the mean: z·S / m
    const manifest = await (await api(`/tasks/${id}/models/1`, { headers: ADMIN })).json<any>();
    expect(manifest).toMatchObject({ participants: 4, metrics: null, privacy: { mode: 'central', rounds: 1, noiseMultiplier: z, clipNorm: S } });
    const after = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(after.privacySpent).toMatchObject({ rounds: 1, exhausted: false });
  });
});

describe('the shards setting', () => {
  it('is chosen from the round size, and refused with invalid_sharding where one object must see the round', async () => {
    expect((await createTask({ clientsPerRound: 3 })).task.shards).toBe(1);
    expect((await createTask({ clientsPerRound: 2_500, minClients: 1 })).task.shards).toBe(3);
    const secure = { secureAggregation: {} };
    expect((await createTask({ clientsPerRound: 2_500, minClients: 1000 }, initialWeights(), secure)).task.shards).toBe(1);
    const refusals: [Record<string, unknown>, RegExp][] = [
      [{ shards: 2, strategy: { name: 'median' } }, /every stored update/],
      [{ shards: 2, strategy: { name: 'fedbuff', bufferSize: 4 } }, /FedBuff/],
      [{ shards: 2, secureAggregation: {} }, /secure aggregation/],
      [{ shards: 40 }, /exceeds the round's assignments/],
    ];
    for (const [extra, message] of refusals) {
      const res = await adminJson('/tasks', 'POST', {
        name: 't',
        modelTopology: TOPOLOGY,
        initialWeights: base64(encodeTensors(split(initialWeights()))),
        rounds: { clientsPerRound: 8, minClients: 4 },
        ...extra,
      });
      const body = await res.json<any>();
      expect([res.status, body.error?.code], JSON.stringify(extra)).toEqual([400, 'invalid_sharding']);
      expect(body.error.message).toMatch(message);
    }
    const zero = await adminJson('/tasks', 'POST', { shards: 0 });
    expect([zero.status, (await zero.json<any>()).error.code]).toEqual([400, 'invalid_request']);
  });
});
