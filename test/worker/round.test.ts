import { runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminJson, api, checkIn, createTask, downloadWeights, encodeUpdate, fedavgReference, initialWeights, maxAbsDiff, randomDelta, registerClient, stubOf, submit, ADMIN } from './helpers.ts';

describe('a whole round on the real runtime', () => {
  it('publishes base + Σ nᵢΔᵢ / Σ nᵢ as version 1, then opens round 2 on it', async () => {
    // Prepare
    const { id, task } = await createTask({ clientsPerRound: 3 });
    expect(task).toMatchObject({ currentVersion: 0, numParams: 15, currentRound: { round: 1, status: 'open', assigned: 0 } });
    const clients = await Promise.all([1, 2, 3].map(() => registerClient(id)));
    const updates = [
      { delta: randomDelta(1), n: 10 },
      { delta: randomDelta(2), n: 35 },
      { delta: randomDelta(3), n: 7 },
    ];

    // Execute
    for (const [i, c] of clients.entries()) {
      const ci = await checkIn(id, c);
      expect(ci.body).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0, plan: { epochs: 1, batchSize: 8, learningRate: 0.1 } });
      const r = await submit(id, c, 1, encodeUpdate(updates[i]!.delta, { baseVersion: 0, numExamples: updates[i]!.n, metrics: { loss: i + 1 } }));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ round: 1, clientId: c.clientId, seq: i + 1, numExamples: updates[i]!.n });
    }
    expect(await runDurableObjectAlarm(stubOf(id))).toBe(true);

    // Assert
    const published = await downloadWeights(id, 1);
    expect(maxAbsDiff(published, fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
    const manifest = await (await api(`/tasks/${id}/models/1`, { headers: ADMIN })).json<any>();
    expect(manifest).toMatchObject({ version: 1, parentVersion: 0, round: 1, participants: 3, numExamples: 52 });
    expect(manifest.metrics.loss).toBeCloseTo((1 * 10 + 2 * 35 + 3 * 7) / 52, 12);
    const status = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(status).toMatchObject({ currentVersion: 1, currentRound: { round: 2, status: 'open', baseVersion: 1, accepted: 0 } });
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ round: 1, status: 'closed', resultVersion: 1, accepted: 3, rejected: 0, closeReason: 'goal_reached' });
    expect(round.participants.map((p: any) => p.clientId).sort()).toEqual(clients.map((c) => c.clientId).sort());
    const next = await checkIn(id, clients[0]!);
    expect(next.body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
  });
});
