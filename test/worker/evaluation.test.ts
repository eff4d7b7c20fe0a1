import { runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ADMIN, api, type Client, checkIn, createTask, encodeUpdate, randomDelta, registerClient, stubOf, submit } from './helpers.ts';

function report(taskId: string, client: Client, version: number, body: unknown) {
  return api(`/tasks/${taskId}/models/${version}/evaluation`, {
    method: 'PUT',
    headers: { ...client.auth, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('federated evaluation', () => {
  it('averages the clients’ reports per version, weighted by examples; a new report replaces the old', async () => {
    const { id } = await createTask({ maxExamplesPerClient: 500 });
    const [a, b, c] = [await registerClient(id), await registerClient(id), await registerClient(id)];
    for (const x of [a, b, c]) expect((await checkIn(id, x)).body.status).toBe('assigned'); // taking part makes a client eligible
    expect((await report(id, a, 0, { numExamples: 100, metrics: { loss: 0.5, accuracy: 0.8 } })).status).toBe(200);
    expect((await report(id, b, 0, { numExamples: 300, metrics: { loss: 0.9, accuracy: 0.6 } })).status).toBe(200);
    expect((await report(id, c, 0, { numExamples: 50, metrics: { loss: 9 } })).status).toBe(200);
    // c reports again: its earlier report is replaced, not added.
    expect((await report(id, c, 0, { numExamples: 100, metrics: { loss: 0.1, auc: 0.7 } })).status).toBe(200);
    const m = await (await api(`/tasks/${id}/models/0`, { headers: a.auth })).json<any>();
    expect(m.federatedEvaluation.clients).toBe(3);
    expect(m.federatedEvaluation.numExamples).toBe(500);
    expect(m.federatedEvaluation.metrics.loss).toBeCloseTo((0.5 * 100 + 0.9 * 300 + 0.1 * 100) / 500, 12);
    expect(m.federatedEvaluation.metrics.accuracy).toBeCloseTo((0.8 * 100 + 0.6 * 300) / 400, 12);
    expect(m.federatedEvaluation.metrics.auc).toBeCloseTo(0.7, 12);
    expect(m.serverMetrics).toBeNull();

    // The operator's own held-out evaluation sits beside it.
    const put = await api(`/tasks/${id}/models/0/server-metrics`, {
      method: 'PUT',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: JSON.stringify({ metrics: { accuracy: 0.91, loss: 0.3 } }),
    });
    expect(put.status).toBe(200);
    expect((await put.json<any>()).serverMetrics).toEqual({ accuracy: 0.91, loss: 0.3 });
    const listed = await (await api(`/tasks/${id}/models`, { headers: ADMIN })).json<any>();
    expect(listed.versions[0]).toMatchObject({ version: 0, serverMetrics: { accuracy: 0.91 }, federatedEvaluation: { clients: 3 } });
  });

  it('rejects bad reports with their codes and keeps the accepted ones', async () => {
    const { id } = await createTask({ maxExamplesPerClient: 500 });
    const a = await registerClient(id);
    await checkIn(id, a);
    await report(id, a, 0, { numExamples: 10, metrics: { loss: 1 } });
    const cases: [unknown, number, number, string][] = [
      [{ numExamples: 10, metrics: { loss: 1 } }, 7, 404, 'version_not_found'],
      [{ numExamples: 0, metrics: { loss: 1 } }, 0, 400, 'invalid_request'],
      [{ numExamples: 2.5, metrics: { loss: 1 } }, 0, 400, 'invalid_request'],
      [{ numExamples: 501, metrics: { loss: 1 } }, 0, 422, 'invalid_example_count'],
      [{ numExamples: 10, metrics: {} }, 0, 400, 'invalid_request'],
      [{ numExamples: 10, metrics: { loss: 'low' } }, 0, 400, 'invalid_request'],
      [{ numExamples: 10, metrics: { loss: 1 }, weight: 9 }, 0, 400, 'invalid_request'],
      [{ numExamples: 10, metrics: JSON.parse('{"__proto__": 1}') }, 0, 400, 'invalid_request'],
      [{ numExamples: 10, metrics: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`m${i}`, i])) }, 0, 400, 'invalid_request'],
    ];
    for (const [body, version, status, code] of cases) {
      const res = await report(id, a, version, body);
      expect({ body, status: res.status, code: (await res.json<any>()).error.code }).toEqual({ body, status, code });
    }
    const malformed = await api(`/tasks/${id}/models/0/evaluation`, {
      method: 'PUT',
      headers: { ...a.auth, 'content-type': 'application/json' },
      body: '{"numExamples": 3,',
    });
    expect((await malformed.json<any>()).error.code).toBe('malformed_json');
    // Only clients report evaluations; only the operator records server metrics.
    expect(
      (
        await api(`/tasks/${id}/models/0/evaluation`, {
          method: 'PUT',
          headers: { ...ADMIN, 'content-type': 'application/json' },
          body: '{"numExamples":1,"metrics":{"loss":1}}',
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await api(`/tasks/${id}/models/0/server-metrics`, {
          method: 'PUT',
          headers: { ...a.auth, 'content-type': 'application/json' },
          body: '{"metrics":{"loss":1}}',
        })
      ).status,
    ).toBe(403);
    const m = await (await api(`/tasks/${id}/models/0`, { headers: ADMIN })).json<any>();
    expect(m.federatedEvaluation).toEqual({ clients: 1, numExamples: 10, metrics: { loss: 1 } });
  });

  it('takes reports only from clients that took part, so a stranger cannot swamp the average with a huge count', async () => {
    const { id } = await createTask({ clientsPerRound: 2, overSelection: 1, maxExamplesPerClient: 100_000 });
    const [a, b, stranger] = [await registerClient(id), await registerClient(id), await registerClient(id)];
    await checkIn(id, a);
    await checkIn(id, b);
    expect((await report(id, a, 0, { numExamples: 50, metrics: { accuracy: 0.9 } })).status).toBe(200);
    // The reported attack: a client that never took part claims 100,000 examples at accuracy 0.
    const attack = await report(id, stranger, 0, { numExamples: 100_000, metrics: { accuracy: 0 } });
    expect([attack.status, (await attack.json<any>()).error.code]).toEqual([403, 'not_participant']);
    const m = await (await api(`/tasks/${id}/models/0`, { headers: ADMIN })).json<any>();
    expect(m.federatedEvaluation).toEqual({ clients: 1, numExamples: 50, metrics: { accuracy: 0.9 } });

    // After the round closes its participants stay eligible (D1 remembers them); the stranger still is not.
    for (const [x, seed] of [
      [a, 1],
      [b, 2],
    ] as const)
      expect((await submit(id, x, 1, encodeUpdate(randomDelta(seed), { baseVersion: 0, numExamples: 5 }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));
    expect((await report(id, b, 1, { numExamples: 20, metrics: { accuracy: 0.8 } })).status).toBe(200);
    expect((await report(id, stranger, 1, { numExamples: 20, metrics: { accuracy: 0.8 } })).status).toBe(403);
  });

  it('aggregates the evaluations of a whole page of versions (200, more than D1 binds in one statement)', async () => {
    const { env } = await import('cloudflare:test');
    const { database, federatedEvaluations } = await import('../../aggregator/src/db/store.ts');
    const { id } = await createTask();
    const now = Date.now();
    for (const v of [0, 150, 199])
      await env.DB.prepare('INSERT INTO evaluation_metrics VALUES (?, ?, ?, ?, ?, ?, ?)')
        .bind(id, v, 'c_x', 'loss', v / 100, 10, now)
        .run();
    const m = await federatedEvaluations(
      database(env.DB),
      id,
      Array.from({ length: 200 }, (_, i) => 199 - i),
    );
    expect([...m.keys()].sort((a, b) => a - b)).toEqual([0, 150, 199]);
    expect(m.get(150)).toEqual({ clients: 1, numExamples: 10, metrics: { loss: 1.5 } });
    expect((await federatedEvaluations(database(env.DB), id, [150])).size).toBe(1);
  });
});
