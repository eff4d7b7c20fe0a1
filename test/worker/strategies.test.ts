import { evictDurableObject, runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeTensors } from '#protocol/safetensors.ts';
import {
  ADMIN,
  adminJson,
  api,
  base64,
  type Client,
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

async function createWith(strategy: unknown, rounds: Record<string, number> = {}) {
  return adminJson('/tasks', 'POST', {
    name: 'strategy',
    modelTopology: TOPOLOGY,
    initialWeights: base64(encodeTensors(split(initialWeights()))),
    rounds: { clientsPerRound: 2, overSelection: 1, ...rounds },
    strategy,
  });
}

/** Runs one round with the given updates; returns the published weights. */
async function round(id: string, clients: Client[], r: number, baseVersion: number, updates: { delta: Float32Array; n: number }[]) {
  for (const [i, c] of clients.entries()) {
    expect((await checkIn(id, c)).body).toMatchObject({ status: 'assigned', round: r, baseVersion });
    expect((await submit(id, c, r, encodeUpdate(updates[i]!.delta, { baseVersion, numExamples: updates[i]!.n }))).status).toBe(200);
  }
  await runDurableObjectAlarm(stubOf(id));
  return downloadWeights(id, baseVersion + 1);
}

function mean(updates: { delta: Float32Array; n: number }[]): Float64Array {
  const total = updates.reduce((a, u) => a + u.n, 0);
  return Float64Array.from(updates[0]!.delta, (_, i) => updates.reduce((a, u) => a + u.n * u.delta[i]!, 0) / total);
}

describe('strategy selection', () => {
  it('refuses unknown strategies and out-of-range parameters with invalid_strategy', async () => {
    for (const strategy of [
      { name: 'fedmagic' },
      { name: 'fedavgm', momentum: 1.5 },
      { name: 'fedadam', tau: -1 },
      { name: 'fedavg', clipNorm: 0 },
      { name: 'fedyogi', beta2: 1 },
    ]) {
      const res = await createWith(strategy);
      expect({ strategy, status: res.status, code: (await res.json<any>()).error.code }).toEqual({ strategy, status: 400, code: 'invalid_strategy' });
    }
  });

  it('shows the strategy with its defaults on the task, and records it on every version it produced', async () => {
    const res = await createWith({ name: 'fedadam', serverLearningRate: 0.05 });
    const task = await res.json<any>();
    expect(task.strategy).toEqual({ name: 'fedadam', serverLearningRate: 0.05, beta1: 0.9, beta2: 0.99, tau: 0.001 });
    const clients = [await registerClient(task.id), await registerClient(task.id)];
    await round(task.id, clients, 1, 0, [
      { delta: randomDelta(1, 0.1), n: 1 },
      { delta: randomDelta(2, 0.1), n: 1 },
    ]);
    const v1 = await (await api(`/tasks/${task.id}/models/1`, { headers: ADMIN })).json<any>();
    expect(v1.strategy).toEqual({ name: 'fedadam', params: { serverLearningRate: 0.05, beta1: 0.9, beta2: 0.99, tau: 0.001 } });
    const v0 = await (await api(`/tasks/${task.id}/models/0`, { headers: ADMIN })).json<any>();
    expect(v0.strategy).toBeNull();
  });
});

describe('server optimizers on the real runtime', () => {
  it('FedAvgM: momentum carries across rounds and survives a restart of the aggregator', async () => {
    const lr = 0.7;
    const beta = 0.5;
    const task = await (await createWith({ name: 'fedavgm', serverLearningRate: lr, momentum: beta })).json<any>();
    const clients = [await registerClient(task.id), await registerClient(task.id)];
    const r1 = [
      { delta: randomDelta(11, 0.2), n: 3 },
      { delta: randomDelta(12, 0.2), n: 1 },
    ];
    const r2 = [
      { delta: randomDelta(13, 0.2), n: 2 },
      { delta: randomDelta(14, 0.2), n: 2 },
    ];
    const w0 = initialWeights();
    const v1 = mean(r1);
    const w1 = await round(task.id, clients, 1, 0, r1);
    expect(
      maxAbsDiff(
        w1,
        Float64Array.from(w0, (w, i) => w + lr * v1[i]!),
      ),
    ).toBeLessThanOrEqual(1e-6);
    await evictDurableObject(stubOf(task.id));
    const v2 = Float64Array.from(v1, (v, i) => beta * v + mean(r2)[i]!);
    const w2 = await round(task.id, clients, 2, 1, r2);
    expect(
      maxAbsDiff(
        w2,
        Float64Array.from(w1, (w, i) => w + lr * v2[i]!),
      ),
    ).toBeLessThanOrEqual(1e-6);
  });

  it('FedAdam matches Reddi et al.’s update computed independently', async () => {
    const p = { serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.01 };
    const task = await (await createWith({ name: 'fedadam', ...p })).json<any>();
    const clients = [await registerClient(task.id), await registerClient(task.id)];
    const ups = [
      { delta: randomDelta(21, 0.3), n: 5 },
      { delta: randomDelta(22, 0.3), n: 1 },
    ];
    const d = mean(ups);
    const w1 = await round(task.id, clients, 1, 0, ups);
    const expected = Float64Array.from(initialWeights(), (w, i) => {
      const m = (1 - p.beta1) * d[i]!;
      const v = p.beta2 * p.tau ** 2 + (1 - p.beta2) * d[i]! ** 2;
      return w + (p.serverLearningRate * m) / (Math.sqrt(v) + p.tau);
    });
    expect(maxAbsDiff(w1, expected)).toBeLessThanOrEqual(1e-6);
  });
});

describe('norm bounding and the example-count cap', () => {
  it('clips a boosted update to the bound before it is summed', async () => {
    const task = await (await createWith({ name: 'fedavg', clipNorm: 1 })).json<any>();
    const clients = [await registerClient(task.id), await registerClient(task.id)];
    const small = randomDelta(31, 0.01); // norm well below 1
    const boosted = randomDelta(32, 10); // norm ≈ 22
    const norm = Math.sqrt(boosted.reduce((a, x) => a + x * x, 0));
    const w1 = await round(task.id, clients, 1, 0, [
      { delta: small, n: 1 },
      { delta: boosted, n: 1 },
    ]);
    const clipped = Float64Array.from(boosted, (x) => x / norm);
    expect(
      maxAbsDiff(
        w1,
        Float64Array.from(initialWeights(), (w, i) => w + (small[i]! + clipped[i]!) / 2),
      ),
    ).toBeLessThanOrEqual(1e-6);
  });

  it('refuses a client claiming 10⁹ examples, so it cannot dominate the average', async () => {
    const task = await (await createWith({ name: 'fedavg' }, { maxExamplesPerClient: 1000 })).json<any>();
    const clients = [await registerClient(task.id), await registerClient(task.id)];
    for (const c of clients) await checkIn(task.id, c);
    const greedy = await submit(task.id, clients[0]!, 1, encodeUpdate(randomDelta(41, 5), { baseVersion: 0, numExamples: 1e9 }));
    expect([greedy.status, greedy.body.error.code]).toEqual([422, 'invalid_example_count']);
    const honest = [
      { delta: randomDelta(42, 0.1), n: 900 },
      { delta: randomDelta(43, 0.1), n: 100 },
    ];
    const w1 = await round(task.id, clients, 1, 0, honest);
    expect(
      maxAbsDiff(
        w1,
        Float64Array.from(initialWeights(), (w, i) => w + mean(honest)[i]!),
      ),
    ).toBeLessThanOrEqual(1e-6);
  });
});
