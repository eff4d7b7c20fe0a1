/**
 * Property-based fuzzing (fast-check) of every body the API accepts, through the real routes in
 * workerd: thousands of generated inputs, no 500, a stable code for each refusal, and no state
 * change from a refused request.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '#protocol/codes.ts';
import { encodeTensors } from '#protocol/safetensors.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  ADMIN,
  api,
  base64,
  type Client,
  checkIn,
  createTask,
  encodeUpdate,
  initialWeights,
  randomDelta,
  registerClient,
  split,
  stubOf,
  TOPOLOGY,
} from './helpers.ts';

/** Sends a JSON body (or raw text) and checks the answer is a success or a stable error: never a 500. */
async function send(path: string, method: string, headers: Record<string, string>, body: string): Promise<{ status: number; code?: string }> {
  const res = await api(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body });
  const text = await res.text();
  expect(res.status, `${method} ${path} ${body.slice(0, 200)} → ${text.slice(0, 300)}`).toBeLessThan(500);
  if (res.status >= 400) {
    const code = JSON.parse(text).error.code as string;
    expect(Object.hasOwn(ERROR_STATUS, code)).toBe(true);
    expect(ERROR_STATUS[code as keyof typeof ERROR_STATUS]).toBe(res.status);
    return { status: res.status, code };
  }
  return { status: res.status };
}

/** A JSON value that is usually an object, with the route's own field names among random ones. */
function jsonish(fields: string[]) {
  const key = fc.oneof(fc.constantFrom(...fields, '__proto__', 'constructor'), fc.string({ maxLength: 8 }));
  return fc.oneof(
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 4, arbitrary: fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }) },
  );
}

/** Randomly changes, drops or adds one field of a valid body (so many mutants stay close to valid). */
function mutate(valid: Record<string, unknown>) {
  const keys = Object.keys(valid);
  return fc.oneof(
    fc.record({ k: fc.constantFrom(...keys), v: fc.jsonValue({ maxDepth: 2 }) }).map(({ k, v }) => ({ ...valid, [k]: v })),
    fc.constantFrom(...keys).map((k) => Object.fromEntries(Object.entries(valid).filter(([x]) => x !== k))),
    fc.record({ k: fc.string({ maxLength: 8 }), v: fc.jsonValue({ maxDepth: 1 }) }).map(({ k, v }) => ({ ...valid, [k]: v })),
  );
}

async function count(sql: string): Promise<number> {
  return (await env.DB.prepare(sql).first<{ n: number }>())!.n;
}

describe('every JSON body the API takes, fuzzed', () => {
  it('task creation: 800 generated bodies, each created task counted, nothing stored for a refusal', async () => {
    const valid = {
      name: 'fuzz',
      modelTopology: TOPOLOGY,
      initialWeights: base64(encodeTensors(split(initialWeights()))),
      rounds: { clientsPerRound: 2 },
      plan: { epochs: 1 },
      strategy: { name: 'fedavg' },
    };
    const tasksBefore = await count('SELECT count(*) AS n FROM tasks');
    const blobsBefore = (await env.MODELS.list()).objects.length;
    let created = 0;
    const codes = new Map<string, number>();
    const body = fc.oneof(jsonish(Object.keys(valid)), mutate(valid), mutate(valid).chain(mutate));
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const r = await send('/tasks', 'POST', ADMIN, JSON.stringify(b));
        if (r.status === 201) created++;
        else codes.set(r.code!, (codes.get(r.code!) ?? 0) + 1);
      }),
      { numRuns: 800, seed: 31 },
    );
    expect(await count('SELECT count(*) AS n FROM tasks')).toBe(tasksBefore + created);
    expect((await env.MODELS.list()).objects.length).toBe(blobsBefore + created);
    // The generator reaches both sides and several refusals.
    expect(created).toBeGreaterThan(0);
    expect([...codes.keys()]).toEqual(expect.arrayContaining(['invalid_request', 'invalid_strategy']));
  }, 120_000);

  it('clients, evaluations, server metrics and operator tokens: 400 bodies each, refusals change nothing', async () => {
    const { id } = await createTask({ clientsPerRound: 10, overSelection: 1 });
    // Evaluations come from participants; eight of them share the load under the per-client rate limit.
    const reporters: Client[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await registerClient(id);
      await checkIn(id, c);
      reporters.push(c);
    }
    let turn = 0;
    const rows = async (sql: string) => JSON.stringify((await env.DB.prepare(sql).all()).results);
    const routes: { path: string; method: string; auth: () => Record<string, string>; valid: Record<string, unknown>; state: () => Promise<string> }[] = [
      {
        path: `/tasks/${id}/clients`,
        method: 'POST',
        auth: () => ADMIN,
        valid: { label: 'x', expiresInSeconds: 3600 },
        state: async () => String(await count('SELECT count(*) AS n FROM clients')),
      },
      {
        path: `/tasks/${id}/models/0/evaluation`,
        method: 'PUT',
        auth: () => reporters[turn++ % reporters.length]!.auth,
        valid: { numExamples: 10, metrics: { loss: 1 } },
        state: () => rows('SELECT * FROM evaluation_metrics ORDER BY client_id, name'),
      },
      {
        path: `/tasks/${id}/models/0/server-metrics`,
        method: 'PUT',
        auth: () => ADMIN,
        valid: { metrics: { accuracy: 0.5 } },
        state: () => rows('SELECT server_metrics FROM model_versions'),
      },
      // retireCurrent is left out: a valid rotation would retire this file's secret.
      {
        path: '/admin/tokens',
        method: 'POST',
        auth: () => ADMIN,
        valid: { label: 'x', expiresInSeconds: 3600 },
        state: async () => String(await count('SELECT count(*) AS n FROM admin_tokens')),
      },
    ];
    for (const route of routes) {
      let accepted = 0;
      const body = fc
        .oneof(jsonish(Object.keys(route.valid)), mutate(route.valid), fc.constant(route.valid))
        .filter((b) => !(typeof b === 'object' && b !== null && 'retireCurrent' in b));
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            body.map((b) => JSON.stringify(b)),
            fc.string({ maxLength: 30 }),
          ),
          async (text) => {
            const before = await route.state();
            const r = await send(route.path, route.method, route.auth(), text);
            if (r.status < 300) accepted++;
            else expect(await route.state(), `${route.path} changed state on ${r.code}`).toBe(before);
          },
        ),
        { numRuns: 400, seed: 32 },
      );
      expect(accepted, route.path).toBeGreaterThan(0);
    }
  }, 120_000);
});

describe('update bodies, fuzzed', () => {
  it('1,000 generated bodies from 20 assigned clients: no 500, refusals leave ledger and round untouched', async () => {
    const { id } = await createTask({ clientsPerRound: 25, overSelection: 1, maxExamplesPerClient: 1000 });
    const clients: Client[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await registerClient(id);
      await checkIn(id, c);
      clients.push(c);
    }
    const ledger = () =>
      runInDurableObject(stubOf(id), async (_o: TaskAggregator, state) => state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM ledger').one().n);
    const valid = encodeUpdate(randomDelta(5), { baseVersion: 0, numExamples: 7 });
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 5 }), fc.nat()).map(([flips, cut]) => {
        const b = valid.slice();
        for (const [at, v] of flips) b[at % b.length] = v;
        return cut % 3 === 0 ? b.subarray(0, cut % b.length) : b;
      }),
      fc
        .record({ base: fc.constantFrom('0', '1', 'x'), n: fc.integer({ min: -1, max: 1001 }), m: fc.jsonValue({ maxDepth: 1 }) })
        .map(({ base, n, m }) => encodeUpdate(randomDelta(6), { baseVersion: base, numExamples: n, metrics: m })),
    );
    let i = 0;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const c = clients[i++ % clients.length]!;
        const before = await ledger();
        const res = await api(`/tasks/${id}/rounds/1/update`, { method: 'PUT', headers: { ...c.auth, 'content-type': 'application/octet-stream' }, body: b });
        const json = await res.json<any>();
        expect(res.status, JSON.stringify(json)).toBeLessThan(500);
        if (res.status === 200) {
          accepted++;
          return;
        }
        expect(Object.hasOwn(ERROR_STATUS, json.error.code)).toBe(true);
        // duplicate_conflict and replays aside, a refusal never adds to the ledger.
        expect(await ledger()).toBe(before);
      }),
      { numRuns: 1_000, seed: 33 },
    );
    const live = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(live.currentRound.accepted).toBe(await ledger());
    expect(accepted).toBeGreaterThanOrEqual(live.currentRound.accepted); // replays of accepted bodies answer 200 too
  }, 180_000);
});
