import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { clipToNorm, l2Norm } from '#protocol/dp.ts';
import { UPDATE_META } from '#protocol/messages.ts';
import { sampledGaussianEpsilon } from '#protocol/rdp.ts';
import { encodeTensors } from '#protocol/safetensors.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  ADMIN,
  adminJson,
  api,
  base64,
  type Client,
  checkIn,
  clippedMean,
  downloadWeights,
  encodeUpdate,
  expectNoise,
  initialWeights,
  NUM_PARAMS,
  randomDelta,
  registerClient,
  split,
  stubOf,
  submit,
  TOPOLOGY,
} from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function create(privacy: unknown, extra: Record<string, unknown> = {}) {
  return adminJson('/tasks', 'POST', {
    name: 'dp',
    modelTopology: TOPOLOGY,
    initialWeights: base64(encodeTensors(split(initialWeights()))),
    rounds: { clientsPerRound: 3, minClients: 1, deadlineSeconds: 1 },
    privacy,
    ...extra,
  });
}

async function createDp(privacy: Record<string, unknown>, rounds: Record<string, number> = {}) {
  const res = await create(privacy, { rounds: { clientsPerRound: 3, minClients: 1, deadlineSeconds: 1, ...rounds } });
  const task = await res.json<any>();
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(task)}`);
  return task;
}

async function clients(id: string, n: number): Promise<Client[]> {
  return Promise.all(Array.from({ length: n }, () => registerClient(id)));
}

/** Every client checks in and submits `deltas[i]`; then the deadline passes and the round closes. */
async function dpRound(
  id: string,
  cs: Client[],
  round: number,
  baseVersion: number,
  deltas: Float32Array[],
  meta: (i: number) => Record<string, string> = () => ({}),
) {
  for (const [i, c] of cs.entries()) {
    const r = await checkIn(id, c);
    expect(r.body).toMatchObject({ status: 'assigned', round, baseVersion });
    const body = encodeTensors(split(deltas[i]!), { [UPDATE_META.baseVersion]: String(baseVersion), [UPDATE_META.numExamples]: String(10 + i), ...meta(i) });
    const s = await submit(id, c, round, body);
    expect(s.status, JSON.stringify(s.body)).toBe(200);
  }
  await sleep(1_100);
  await runDurableObjectAlarm(stubOf(id));
}

const manifestOf = async (id: string, v: number) => (await api(`/tasks/${id}/models/${v}`, { headers: ADMIN })).json<any>();

describe('privacy configuration', () => {
  it('refuses bad privacy parameters with invalid_privacy', async () => {
    for (const privacy of [
      { mode: 'central', noiseMultiplier: 0, clipNorm: 1, samplingRate: 0.1 },
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0 },
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 1.5 },
      { mode: 'central', noiseMultiplier: 1, clipNorm: -1, samplingRate: 0.1 },
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1 }, // no sampling rate
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1, delta: 0.5 },
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1, clipping: 'somewhere' },
      { mode: 'shuffled', noiseMultiplier: 1, clipNorm: 1 },
      { mode: 'local', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1 }, // local DP has no sampling
      // Adaptive clipping: σ_b = 3/20 is below z/2.
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1, adaptiveClipping: {} },
      // One round alone spends more than the budget.
      { mode: 'central', noiseMultiplier: 0.5, clipNorm: 1, samplingRate: 1, epsilonBudget: 1 },
    ]) {
      const res = await create(privacy);
      const body = await res.json<any>();
      expect({ privacy, status: res.status, code: body.error.code }).toEqual({ privacy, status: 400, code: 'invalid_privacy' });
      expect(body.error.message.length).toBeGreaterThan(20);
    }
  });

  it('refuses strategies that break the guarantee with invalid_strategy, saying why', async () => {
    const privacy = { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.5 };
    for (const [strategy, why] of [
      [{ name: 'krum' }, /selects individual updates/],
      [{ name: 'median' }, /robust rule/],
      [{ name: 'trimmedmean' }, /robust rule/],
      [{ name: 'fedbuff' }, /FedBuff.*no privacy analysis/],
      [{ name: 'fedavg', clipNorm: 2 }, /both clip/],
    ] as const) {
      const res = await create(privacy, { strategy, rounds: { clientsPerRound: 5, minClients: 1, deadlineSeconds: 1 } });
      const body = await res.json<any>();
      expect({ strategy, status: res.status, code: body.error.code }).toEqual({ strategy, status: 400, code: 'invalid_strategy' });
      expect(body.error.message).toMatch(why);
    }
    // Mean-based server optimizers compose: noise goes on the mean before the optimizer.
    for (const name of ['fedavg', 'fedprox', 'fedavgm', 'fedadam']) expect((await create(privacy, { strategy: { name } })).status).toBe(201);
  });
});

describe('central DP-FedAvg', () => {
  it('clips on the server, noises the sum, divides by the expected participants, and records ε on the version', async () => {
    const z = 0.5;
    const S = 1;
    const task = await createDp({ mode: 'central', noiseMultiplier: z, clipNorm: S, samplingRate: 1, delta: 1e-5 });
    expect(task.privacy).toMatchObject({ mode: 'central', clipping: 'server', noiseMultiplier: z, clipNorm: S, samplingRate: 1, delta: 1e-5 });
    expect(task.privacySpent).toEqual({ rounds: 0, epsilon: 0, clipNorm: S, exhausted: false });
    // clientsPerRound is the expected number of participants; the minimum defaults to 1 under central DP.
    const defaults = await (
      await create({ mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1 }, { rounds: { clientsPerRound: 50 } })
    ).json<any>();
    expect(defaults.rounds).toMatchObject({ clientsPerRound: 50, minClients: 1 });
    const cs = await clients(task.id, 3);
    const deltas = [randomDelta(1, 5), randomDelta(2, 5), randomDelta(3, 0.01)]; // two far above S, one below
    expect(l2Norm(deltas[0]!)).toBeGreaterThan(S);
    expect(l2Norm(deltas[2]!)).toBeLessThan(S);
    // Server-side clipping: the check-in asks nothing of the client.
    expect((await checkIn(task.id, cs[0]!)).body.privacy).toBeUndefined();
    await dpRound(task.id, cs, 1, 0, deltas);

    const w = await downloadWeights(task.id, 1);
    const base = initialWeights();
    expectNoise(w, clippedMean(base, deltas, S, 3), (z * S) / 3); // noise on the mean: z·S / m
    // The unclipped example-weighted mean is far away: the server did clip, with equal weights.
    const raw = Float64Array.from(base, (b, i) => b + (10 * deltas[0]![i]! + 11 * deltas[1]![i]! + 12 * deltas[2]![i]!) / 33);
    expect(Math.max(...Array.from(w, (x, i) => Math.abs(x - raw[i]!)))).toBeGreaterThan(0.5);

    const m = await manifestOf(task.id, 1);
    const epsilon = sampledGaussianEpsilon(1, z, 1, 1e-5).epsilon;
    expect(m.privacy).toEqual({
      mode: 'central',
      accountant: expect.stringContaining('rdp'),
      epsilon,
      delta: 1e-5,
      noiseMultiplier: z,
      clipNorm: S,
      samplingRate: 1,
      rounds: 1,
      clipping: 'server',
      epsilonBudget: null,
    });
    expect(m.metrics).toBeNull(); // clients' own metrics are not kept under central DP
    const after = await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>();
    expect(after.privacySpent).toEqual({ rounds: 1, epsilon, clipNorm: S, exhausted: false });
    expect((await manifestOf(task.id, 0)).privacy).toBeNull();
  });

  it('runs a server optimizer on the noised mean: FedAvgM keeps its momentum with the version', async () => {
    const res = await create(
      { mode: 'central', noiseMultiplier: 0.1, clipNorm: 1, samplingRate: 1 },
      { strategy: { name: 'fedavgm', serverLearningRate: 1, momentum: 0.9 }, rounds: { clientsPerRound: 2, minClients: 1, deadlineSeconds: 1 } },
    );
    const task = await res.json<any>();
    expect(res.status).toBe(201);
    const cs = await clients(task.id, 2);
    const d = [randomDelta(31, 0.01), randomDelta(32, 0.01)]; // below S: nothing clipped
    await dpRound(task.id, cs, 1, 0, d);
    await dpRound(task.id, cs, 2, 1, d);
    const [w0, w1, w2] = [initialWeights(), await downloadWeights(task.id, 1), await downloadWeights(task.id, 2)];
    // Momentum: step 2 = 0.9·step 1 + the second noised mean, so (with the same updates twice) about 1.9× step 1.
    const sigma = (0.1 * 1) / 2;
    for (let i = 0; i < NUM_PARAMS; i++) {
      const mean = (d[0]![i]! + d[1]![i]!) / 2;
      const step1 = w1[i]! - w0[i]!;
      expect(Math.abs(step1 - mean)).toBeLessThan(6 * sigma);
      expect(Math.abs(w2[i]! - w1[i]! - (0.9 * step1 + mean))).toBeLessThan(6 * sigma);
    }
    const m = await manifestOf(task.id, 2);
    expect(m.strategy).toMatchObject({ name: 'fedavgm', params: { momentum: 0.9 } });
    expect(m.privacy).toMatchObject({ rounds: 2 });
  });

  it('with client-side clipping, asks the client to clip and refuses an update above S with update_norm_exceeded', async () => {
    const task = await createDp({ mode: 'central', noiseMultiplier: 1, clipNorm: 0.5, samplingRate: 1, clipping: 'client' });
    const [a, b] = await clients(task.id, 2);
    const ca = await checkIn(task.id, a!);
    expect(ca.body.privacy).toEqual({ mode: 'central', clipNorm: 0.5, noiseMultiplier: 0, delta: 1e-5, reportUnclipped: false });
    const big = randomDelta(5, 1);
    const refused = await submit(task.id, a!, 1, encodeUpdate(big, { baseVersion: 0, numExamples: 3 }));
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('update_norm_exceeded');
    expect(refused.body.error.message).toMatch(/above this round's clip norm 0.5/);
    // Clipped on the client, exactly as the SDK does: accepted, and the refusal left nothing behind.
    clipToNorm(big, 0.5);
    expect((await submit(task.id, a!, 1, encodeUpdate(big, { baseVersion: 0, numExamples: 3 }))).status).toBe(200);
    await checkIn(task.id, b!);
    const live = (await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>()).currentRound;
    expect(live).toMatchObject({ accepted: 1, rejectedByCode: { update_norm_exceeded: 1 } });
  });

  it('samples each client with probability q, once per round, and closes only at the deadline', async () => {
    const task = await createDp({ mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.5 }, { clientsPerRound: 2 });
    const cs = await clients(task.id, 40);
    const first = await Promise.all(cs.map((c) => checkIn(task.id, c)));
    const assigned = first.filter((r) => r.body.status === 'assigned').length;
    // Binomial(40, 0.5): 20 ± 3.2 (bounds at 4.7σ); no cap at clientsPerRound × overSelection under Poisson sampling.
    expect(assigned).toBeGreaterThanOrEqual(5);
    expect(assigned).toBeLessThanOrEqual(35);
    expect(assigned).toBeGreaterThan(Math.ceil(2 * 1.3));
    for (const r of first.filter((x) => x.body.status !== 'assigned')) expect(r.body).toMatchObject({ status: 'retry_later', reason: 'not_sampled' });
    // Checking in again cannot draw again.
    const again = await Promise.all(cs.map((c) => checkIn(task.id, c)));
    expect(again.map((r) => r.body.status === 'assigned')).toEqual(first.map((r) => r.body.status === 'assigned'));
    // Reaching clientsPerRound does not close the round: every sampled update counts until the deadline.
    const sampled = cs.filter((_, i) => first[i]!.body.status === 'assigned');
    for (const [i, c] of sampled.slice(0, 4).entries())
      expect((await submit(task.id, c, 1, encodeUpdate(randomDelta(i), { baseVersion: 0, numExamples: 1 }))).status).toBe(200);
    const live = (await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>()).currentRound;
    expect(live).toMatchObject({ status: 'open', accepted: 4, assigned });
  });

  it('ends a round in which nobody was drawn at its deadline, and draws afresh in the next', async () => {
    const task = await createDp({ mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 1e-9 }, { clientsPerRound: 1 });
    const [a] = await clients(task.id, 1);
    const first = await checkIn(task.id, a!); // q = 10⁻⁹: not drawn
    expect(first.body).toMatchObject({ status: 'retry_later', reason: 'not_sampled' });
    const live = (await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>()).currentRound;
    expect(live.deadlineAt).not.toBeNull(); // the clock runs from the first draw
    await sleep(1_100);
    await runDurableObjectAlarm(stubOf(task.id));
    const rounds = await (await api(`/tasks/${task.id}/rounds`, { headers: ADMIN })).json<any>();
    expect(rounds.rounds.map((r: any) => [r.round, r.status])).toEqual([
      [2, 'open'],
      [1, 'abandoned'],
    ]);
    expect((await checkIn(task.id, a!)).body).toMatchObject({ status: 'retry_later', reason: 'not_sampled' }); // drawn again, in round 2
  });

  it('stops the task at its budget: no round whose release would exceed it, and privacy_budget_exhausted afterwards', async () => {
    const z = 2;
    const q = 1;
    const eps2 = sampledGaussianEpsilon(q, z, 2, 1e-5).epsilon;
    const eps3 = sampledGaussianEpsilon(q, z, 3, 1e-5).epsilon;
    const budget = (eps2 + eps3) / 2; // two rounds fit, a third would not
    const task = await createDp({ mode: 'central', noiseMultiplier: z, clipNorm: 1, samplingRate: q, epsilonBudget: budget });
    const cs = await clients(task.id, 2);
    await dpRound(task.id, cs, 1, 0, [randomDelta(1), randomDelta(2)]);
    expect((await checkIn(task.id, cs[0]!)).body).toMatchObject({ status: 'assigned', round: 2 });
    await dpRound(task.id, cs, 2, 1, [randomDelta(3), randomDelta(4)]);
    const m2 = await manifestOf(task.id, 2);
    expect(m2.privacy).toMatchObject({ rounds: 2, epsilon: eps2, epsilonBudget: budget });
    expect(m2.privacy.epsilon).toBeLessThanOrEqual(budget);
    const after = await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>();
    expect(after).toMatchObject({ status: 'finished', currentVersion: 2, privacySpent: { rounds: 2, epsilon: eps2, exhausted: true } });
    const late = await checkIn(task.id, cs[0]!);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('privacy_budget_exhausted');
    expect(late.body.error.message).toMatch(/spent ε = .* budget/);
    // Its versions stay readable.
    expect((await downloadWeights(task.id, 2)).length).toBe(NUM_PARAMS);
  });

  it('adapts the clip norm toward the target quantile, and client-side clipping follows it', async () => {
    const task = await createDp(
      { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 1, clipping: 'client', adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2 } },
      { clientsPerRound: 60 }, // σ_b = 60/20 = 3 > z/2
    );
    const cs = await clients(task.id, 3);
    const ci = await checkIn(task.id, cs[0]!);
    expect(ci.body.privacy).toMatchObject({ clipNorm: 1, reportUnclipped: true });
    // An update without the unclipped bit is refused: adaptive clipping needs it.
    const tiny = randomDelta(9, 0.001);
    const missing = await submit(task.id, cs[0]!, 1, encodeUpdate(tiny, { baseVersion: 0, numExamples: 1 }));
    expect(missing.body.error.code).toBe('invalid_metadata');
    // Three unclipped updates of the 60 expected: the noised fraction b̃ is far below γ = 0.5, so S grows.
    await dpRound(task.id, cs, 1, 0, [tiny, tiny, tiny], () => ({ [UPDATE_META.unclipped]: '1' }));
    const m = await manifestOf(task.id, 1);
    const a = m.privacy.adaptiveClipping;
    expect(a).toMatchObject({ targetQuantile: 0.5, learningRate: 0.2, countNoise: 3 });
    expect(a.updateNoiseMultiplier ** -2 + (2 * 3) ** -2).toBeCloseTo(1, 10);
    // b̃ = (3 + N(0, 3²)) / 60 ∈ (−0.25, 0.35) (6σ) stays below 0.5, so S rises by exp(0.2·(0.5 − b̃)) ∈ (1.030, 1.162).
    expect(a.nextClipNorm).toBeGreaterThan(1.03);
    expect(a.nextClipNorm).toBeLessThan(1.162);
    expect(m.privacy.clipNorm).toBe(1);
    const next = await checkIn(task.id, cs[0]!);
    expect(next.body).toMatchObject({ status: 'assigned', round: 2, privacy: { clipNorm: a.nextClipNorm } });
  });

  it('adds the same noise when a crashed close is retried: one blob, no second release', async () => {
    const task = await createDp({ mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 1 });
    const cs = await clients(task.id, 2);
    // A crash after the version's D1 row, recurring until the instance ends; the deadline alarm fires on its own.
    await runInDurableObject(stubOf(task.id), (o: TaskAggregator) => o.faults.arm('after_d1', 'always'));
    for (const [i, c] of cs.entries()) {
      await checkIn(task.id, c);
      await submit(task.id, c, 1, encodeUpdate(randomDelta(i), { baseVersion: 0, numExamples: 1 }));
    }
    await sleep(1_100);
    await runDurableObjectAlarm(stubOf(task.id)).catch((e) => expect(String(e)).toMatch(/injected fault/));
    const during = await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>();
    expect(during.currentRound).toMatchObject({ round: 1, status: 'closing' });
    const recorded = await manifestOf(task.id, 1); // the D1 row of the first attempt
    await evictDurableObject(stubOf(task.id));
    // The restarted object finds the round stuck in closing (its failed alarm spent) and resumes it.
    expect((await checkIn(task.id, cs[0]!)).body).toMatchObject({ status: 'retry_later' });
    await runDurableObjectAlarm(stubOf(task.id));
    const t = await (await api(`/tasks/${task.id}`, { headers: ADMIN })).json<any>();
    expect(t).toMatchObject({ currentVersion: 1, currentRound: { round: 2 }, privacySpent: { rounds: 1 } });
    const listed = await env.MODELS.list({ prefix: `tasks/${task.id}/` });
    // Version 0 and version 1 only: the retry noised the sum the same way and wrote the same bytes.
    expect(listed.objects.map((o) => o.key).sort()).toEqual(
      [
        `tasks/${task.id}/weights/${(await manifestOf(task.id, 0)).contentHash}.safetensors`,
        `tasks/${task.id}/weights/${recorded.contentHash}.safetensors`,
      ].sort(),
    );
    // The next round's base is the version clients download.
    const c = await checkIn(task.id, cs[0]!);
    expect(c.body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
  });
});

describe('local DP', () => {
  it('asks each client to clip and noise on the device, and records the per-round and total ε', async () => {
    const z = 4;
    const task = await createDp({ mode: 'local', noiseMultiplier: z, clipNorm: 2, delta: 1e-6 }, { clientsPerRound: 2 });
    const cs = await clients(task.id, 2);
    const ci = await checkIn(task.id, cs[0]!);
    expect(ci.body.privacy).toEqual({ mode: 'local', clipNorm: 2, noiseMultiplier: z, delta: 1e-6, reportUnclipped: false });
    // Ordinary rounds: the goal closes it (no sampling under local DP), example-weighted as the strategy says.
    for (const [i, c] of cs.entries()) {
      await checkIn(task.id, c);
      expect((await submit(task.id, c, 1, encodeUpdate(randomDelta(i, 3), { baseVersion: 0, numExamples: 1 + i }))).status).toBe(200);
    }
    await runDurableObjectAlarm(stubOf(task.id));
    const m = await manifestOf(task.id, 1);
    const perRound = sampledGaussianEpsilon(1, z / 2, 1, 1e-6).epsilon; // replace-one: sensitivity 2S
    expect(m.privacy).toMatchObject({
      mode: 'local',
      clipping: 'local',
      epsilonPerRound: perRound,
      epsilon: perRound,
      rounds: 1,
      samplingRate: 1,
      clipNorm: 2,
    });
  });
});
