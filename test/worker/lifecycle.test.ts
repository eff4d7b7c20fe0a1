/**
 * Pause, resume and stop, in workerd with real Durable Object storage and alarms: a paused task
 * tells check-ins to come back later, still takes the updates of clients it had assigned, and lets
 * its round's deadline pass without closing or abandoning it; resuming restarts the deadline clock
 * with the time that was left, and the round then ends by its rules. A stopped task assigns no one,
 * finishes its open round by its rules, and opens no round after it. Deleting needs a stopped task
 * whose last round is over, and removes it from D1, R2 and the Durable Object's storage.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import { ADMIN, adminJson, api, checkIn, createTask, encodeUpdate, randomDelta, registerClient, stubOf, submit } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('task lifecycle: pause, resume, stop, delete', () => {
  it('pausing stops assignments and the deadline clock, loses nothing; resuming restarts the clock', async () => {
    const { id } = await createTask({ clientsPerRound: 3, minClients: 1, deadlineSeconds: 1 });
    const [a, b] = [await registerClient(id), await registerClient(id)];
    const assigned = await checkIn(id, a);
    expect(assigned.body.status).toBe('assigned');
    const deadline = Date.parse(assigned.body.deadlineAt as string);

    const paused = await adminJson(`/tasks/${id}/pause`, 'POST');
    expect(await paused.json<any>()).toMatchObject({ id, status: 'paused', currentRound: { round: 1, status: 'open', assigned: 1 } });
    expect((await adminJson(`/tasks/${id}/pause`, 'POST')).status).toBe(200); // idempotent
    expect((await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>()).status).toBe('paused');

    // New check-ins wait; the client assigned before the pause still submits.
    expect((await checkIn(id, b)).body).toEqual({ status: 'retry_later', taskId: id, retryAfterSeconds: 30, reason: 'task_paused' });
    expect((await submit(id, a, 1, encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 4 }))).status).toBe(200);

    // The deadline passes while paused: the round stays open, nothing is published or discarded.
    await sleep(Math.max(0, deadline - Date.now()) + 300);
    await runDurableObjectAlarm(stubOf(id));
    const still = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(still).toMatchObject({ currentVersion: 0, currentRound: { round: 1, status: 'open', accepted: 1 } });

    // Resume: the deadline moves on by the time spent paused; check-ins are assigned again.
    const resumedAt = Date.now();
    const resumed = await (await adminJson(`/tasks/${id}/resume`, 'POST')).json<any>();
    expect(resumed).toMatchObject({ id, status: 'active', currentRound: { round: 1, status: 'open', accepted: 1 } });
    const resumedDeadline = Date.parse(resumed.currentRound.deadlineAt);
    expect(resumedDeadline).toBeGreaterThan(resumedAt);
    // At most the 1 s the round had when it was paused.
    expect(resumedDeadline - resumedAt).toBeLessThanOrEqual(1000 + 50);
    expect((await checkIn(id, b)).body.status).toBe('assigned');

    // Then the round ends by its rules at the new deadline: one accepted ≥ minClients 1, so it publishes.
    await sleep(Math.max(0, resumedDeadline - Date.now()) + 300);
    await runDurableObjectAlarm(stubOf(id));
    const after = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(after).toMatchObject({ status: 'active', currentVersion: 1, currentRound: { round: 2, status: 'open' } });
  });

  it('a round that reaches its goal while paused still publishes; pause and resume need the operator', async () => {
    const { id } = await createTask({ clientsPerRound: 1, deadlineSeconds: 60 });
    const a = await registerClient(id);
    expect((await checkIn(id, a)).body.status).toBe('assigned');
    await adminJson(`/tasks/${id}/pause`, 'POST');
    expect((await submit(id, a, 1, encodeUpdate(randomDelta(2), { baseVersion: 0, numExamples: 4 }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));
    const task = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(task).toMatchObject({ status: 'paused', currentVersion: 1, currentRound: { round: 2, status: 'open' } });
    expect((await checkIn(id, a)).body.reason).toBe('task_paused');

    expect((await api(`/tasks/${id}/resume`, { method: 'POST', headers: a.auth })).status).toBe(403);
    expect((await api(`/tasks/${id}/resume`, { method: 'POST' })).status).toBe(401);
    const missing = await adminJson('/tasks/00000000-0000-4000-8000-000000000000/pause', 'POST');
    expect([missing.status, (await missing.json<any>()).error.code]).toEqual([404, 'task_not_found']);
  });

  it('stopping ends the task for good: no new assignments, the open round ends by its rules, no new rounds', async () => {
    const { id } = await createTask({ clientsPerRound: 2, minClients: 1, deadlineSeconds: 1 });
    const [a, b] = [await registerClient(id), await registerClient(id)];
    const assigned = await checkIn(id, a);
    expect(assigned.body.status).toBe('assigned');
    // Paused first: stopping restarts the deadline clock, so the round can end.
    await adminJson(`/tasks/${id}/pause`, 'POST');
    const stopped = await adminJson(`/tasks/${id}/stop`, 'POST');
    expect(await stopped.json<any>()).toMatchObject({ id, status: 'stopped', currentRound: { round: 1, status: 'open', assigned: 1 } });
    expect((await adminJson(`/tasks/${id}/stop`, 'POST')).status).toBe(200); // idempotent
    const refused = await api(`/tasks/${id}/checkin`, { method: 'POST', headers: b.auth });
    expect([refused.status, (await refused.json<any>()).error.code]).toEqual([409, 'task_stopped']);
    // The client assigned before the stop still counts, and the round publishes at its deadline (1 ≥ minClients).
    expect((await submit(id, a, 1, encodeUpdate(randomDelta(3), { baseVersion: 0, numExamples: 4 }))).status).toBe(200);
    await sleep(Math.max(0, Date.parse(assigned.body.deadlineAt as string) - Date.now()) + 1300);
    await runDurableObjectAlarm(stubOf(id));
    const task = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(task).toMatchObject({ status: 'stopped', currentVersion: 1 });
    // No round after it: check-ins keep being refused; a stopped task cannot be paused or resumed.
    const again = await api(`/tasks/${id}/checkin`, { method: 'POST', headers: a.auth });
    expect([again.status, (await again.json<any>()).error.code]).toEqual([409, 'task_stopped']);
    for (const action of ['pause', 'resume']) {
      const res = await adminJson(`/tasks/${id}/${action}`, 'POST');
      expect([res.status, (await res.json<any>()).error.code], action).toEqual([409, 'task_stopped']);
    }
    // Its versions stay readable.
    expect((await api(`/tasks/${id}/models/1/weights`, { headers: a.auth })).status).toBe(200);
  });

  it('deletes a stopped task whose last round is over, with everything it holds; refuses before that', async () => {
    const { id } = await createTask({ clientsPerRound: 1, deadlineSeconds: 60 });
    const a = await registerClient(id);
    await adminJson(`/tasks/${id}/enrollment-keys`, 'POST', {});
    expect((await checkIn(id, a)).body.status).toBe('assigned');
    const running = await adminJson(`/tasks/${id}`, 'DELETE');
    expect([running.status, (await running.json<any>()).error.code]).toEqual([409, 'task_not_stopped']);
    await adminJson(`/tasks/${id}/stop`, 'POST');
    // Stopped, but its last round still has an assigned client: not yet.
    const busy = await adminJson(`/tasks/${id}`, 'DELETE');
    expect([busy.status, (await busy.json<any>()).error.message]).toEqual([409, expect.stringMatching(/last round \(1\) is still running/)]);
    expect((await submit(id, a, 1, encodeUpdate(randomDelta(4), { baseVersion: 0, numExamples: 4 }))).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id)); // the round reached its goal: version 1
    expect((await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>()).currentVersion).toBe(1);
    const blobsBefore = (await env.MODELS.list({ prefix: `tasks/${id}/` })).objects.length;
    expect(blobsBefore).toBe(2);

    const deleted = await adminJson(`/tasks/${id}`, 'DELETE');
    expect(await deleted.json<any>()).toEqual({ id, deleted: { versions: 2, rounds: 1, clients: 1, blobs: 2 } });
    // Gone everywhere: the API, D1, R2, the Durable Object's storage; the client's token with it.
    expect((await api(`/tasks/${id}`, { headers: ADMIN })).status).toBe(404);
    for (const table of ['tasks', 'clients', 'enrollment_keys', 'rounds', 'round_participants', 'model_versions']) {
      const column = table === 'tasks' ? 'id' : 'task_id';
      const row = await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${column} = ?`).bind(id).first<{ n: number }>();
      expect(row!.n, table).toBe(0);
    }
    expect((await env.MODELS.list({ prefix: `tasks/${id}/` })).objects).toEqual([]);
    // The object kept nothing: no task, no alarm.
    const leftover = await runInDurableObject(stubOf(id), async (o: TaskAggregator, state) => [await o.status(), await state.storage.getAlarm()]);
    expect(leftover).toEqual([null, null]);
    expect((await api(`/tasks/${id}/models/current`, { headers: a.auth })).status).toBe(404);
    // Deleting again: the task is not found.
    expect((await adminJson(`/tasks/${id}`, 'DELETE')).status).toBe(404);
  });
});
