import { evictDurableObject, runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { UPDATE_META } from '#protocol/messages.ts';
import { concatTensors, decodeTensors, encodeTensors } from '#protocol/safetensors.ts';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import { ADMIN, adminJson, api, base64, type Client, checkIn, registerClient, stubOf, submit } from './helpers.ts';

/** A model of 2 tensors, 300×500 + 500 = 150,500 parameters: three 64K-parameter storage chunks. */
const SHAPES = [
  { name: 'dense/kernel', shape: [300, 500] },
  { name: 'dense/bias', shape: [500] },
];
const N = 150_500;

function seeded(seed: number, scale: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: N }, () => (next() * 2 - 1) * scale);
}

function tensorsOf(flat: Float32Array) {
  let pos = 0;
  return SHAPES.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const data = flat.subarray(pos, pos + n);
    pos += n;
    return { name: t.name, shape: t.shape, data };
  });
}

const base = seeded(1, 0.1);

async function create(strategy: unknown, rounds: Record<string, number>) {
  return adminJson('/tasks', 'POST', {
    name: 'robust',
    modelTopology: denseTopology(300, [{ name: 'dense', units: 500 }]),
    initialWeights: base64(encodeTensors(tensorsOf(base))),
    rounds: { overSelection: 1, ...rounds },
    strategy,
  });
}

/** k clients submit the given deltas to round 1; the test may evict the object midway. */
async function runRound(strategy: unknown, deltas: Float32Array[], evictAfter?: number): Promise<Float32Array> {
  const res = await create(strategy, { clientsPerRound: deltas.length });
  const task = await res.json<any>();
  expect(res.status).toBe(201);
  const clients: Client[] = [];
  for (let i = 0; i < deltas.length; i++) {
    const c = await registerClient(task.id);
    await checkIn(task.id, c);
    clients.push(c);
  }
  for (const [i, d] of deltas.entries()) {
    const body = encodeTensors(tensorsOf(d), { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: String(10 + i) });
    expect((await submit(task.id, clients[i]!, 1, body)).status).toBe(200);
    if (i === evictAfter) await evictDurableObject(stubOf(task.id));
  }
  await runDurableObjectAlarm(stubOf(task.id));
  const blob = await api(`/tasks/${task.id}/models/1/weights`, { headers: ADMIN });
  expect(blob.status).toBe(200);
  const manifest = await (await api(`/tasks/${task.id}/models/1`, { headers: ADMIN })).json<any>();
  // The version records the strategy under the name the task was created with (Multi-Krum too), with the task's parameters.
  expect(manifest.strategy.name).toBe((strategy as { name: string }).name);
  const { name, ...params } = task.strategy;
  expect(manifest.strategy).toEqual({ name, params });
  return concatTensors(decodeTensors(await blob.arrayBuffer()).tensors);
}

// Four honest updates near each other, one attacker far away (boosted and sign-flipped).
const honest = [seeded(10, 0.01), seeded(11, 0.01), seeded(12, 0.01), seeded(13, 0.01)];
const attacker = Float32Array.from(honest[0]!, (x) => -50 * x + 3);
const deltas = [honest[0]!, attacker, honest[1]!, honest[2]!, honest[3]!];

function perCoordinate(f: (values: number[]) => number): Float32Array {
  return Float32Array.from({ length: N }, (_, j) => Math.fround(base[j]! + Math.fround(f(deltas.map((d) => d[j]!)))));
}

describe('robust strategies on the real runtime (150,500 parameters, 3 storage chunks)', () => {
  it('median: exactly base + the coordinate-wise median, surviving an eviction mid-round', async () => {
    const w = await runRound({ name: 'median' }, deltas, 2);
    const expected = perCoordinate((v) => [...v].sort((a, b) => a - b)[2]!);
    expect(Array.from(w)).toEqual(Array.from(expected));
  });

  it('trimmed mean (β = 0.2): drops the smallest and largest value per coordinate', async () => {
    const w = await runRound({ name: 'trimmedmean', beta: 0.2 }, deltas);
    const expected = perCoordinate((v) => {
      const s = [...v].sort((a, b) => a - b).slice(1, 4);
      return (s[0]! + s[1]! + s[2]!) / 3;
    });
    let max = 0;
    for (let j = 0; j < N; j++) max = Math.max(max, Math.abs(w[j]! - expected[j]!));
    expect(max).toBeLessThanOrEqual(1e-6);
  });

  it('Krum selects exactly the update with the lowest score; Multi-Krum averages the m best', async () => {
    const dist = (a: Float32Array, b: Float32Array) => a.reduce((s, x, j) => s + (x - b[j]!) ** 2, 0);
    const scores = deltas.map((d, i) =>
      deltas
        .map((e, j) => (i === j ? Infinity : dist(d, e)))
        .sort((a, b) => a - b)
        .slice(0, deltas.length - 1 - 2)
        .reduce((a, b) => a + b, 0),
    );
    const order = scores
      .map((s, i) => [s, i] as const)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .map(([, i]) => i);
    expect(order.slice(0, 4)).not.toContain(1); // the attacker scores worst

    const krum = await runRound({ name: 'krum', f: 1, m: 1 }, deltas);
    expect(Array.from(krum)).toEqual(Array.from(Float32Array.from(base, (b, j) => b + deltas[order[0]!]![j]!)));

    const multi = await runRound({ name: 'krum', f: 1, m: 3 }, deltas);
    const chosen = order.slice(0, 3);
    let max = 0;
    for (let j = 0; j < N; j++) max = Math.max(max, Math.abs(multi[j]! - (base[j]! + chosen.reduce((a, i) => a + deltas[i]![j]!, 0) / 3)));
    expect(max).toBeLessThanOrEqual(1e-6);

    // weighting 'examples' (Flower's Krum): the same selection, averaged by example count (client i sent 10 + i).
    const flower = await runRound({ name: 'krum', f: 1, m: 3, weighting: 'examples' }, deltas);
    const n = chosen.map((i) => 10 + i);
    const total = n.reduce((a, b) => a + b, 0);
    max = 0;
    for (let j = 0; j < N; j++) max = Math.max(max, Math.abs(flower[j]! - (base[j]! + chosen.reduce((a, i, c) => a + n[c]! * deltas[i]![j]!, 0) / total)));
    expect(max).toBeLessThanOrEqual(1e-6);
    expect(Array.from(flower)).not.toEqual(Array.from(multi));
  });

  it('trims a declared f values per side when asked, whatever the round size', async () => {
    // k = 5, f = 2: only the median of each coordinate is kept.
    const trimmed = await runRound({ name: 'trimmedmean', f: 2 }, deltas);
    const median = await runRound({ name: 'median' }, deltas);
    expect(Array.from(trimmed)).toEqual(Array.from(median));
  });

  it('validates what the rules make impossible', async () => {
    const cases: [unknown, Record<string, number>][] = [
      [{ name: 'krum', f: 1 }, { clientsPerRound: 4 }], // k must exceed 2f + 2
      [{ name: 'krum', f: 1, m: 5 }, { clientsPerRound: 5 }], // m ≤ k − f
      [{ name: 'median' }, { clientsPerRound: 101 }], // at most 100 stored updates per round
      [{ name: 'trimmedmean', beta: 0.5 }, { clientsPerRound: 5 }],
      [{ name: 'trimmedmean', f: 3 }, { clientsPerRound: 6 }], // minClients must exceed 2f
      [{ name: 'trimmedmean', f: 1, beta: 0.1 }, { clientsPerRound: 6 }], // one or the other
      [{ name: 'krum', f: 1, weighting: 'by-volume' }, { clientsPerRound: 6 }],
    ];
    for (const [strategy, rounds] of cases) {
      const res = await create(strategy, rounds);
      expect({ strategy, status: res.status, code: (await res.json<any>()).error.code }).toEqual({ strategy, status: 400, code: 'invalid_strategy' });
    }
  });
});
