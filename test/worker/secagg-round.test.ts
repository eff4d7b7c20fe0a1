/**
 * Secure aggregation through the real routes and the task's Durable Object (workerd, D1, R2):
 * the four phases with clients dropping between them, the unmasked mean against the plaintext one,
 * aborts below the threshold, what the server stores, and every refusal code of the phases.
 * Phase deadlines are moved into the past (the one fault injection here) instead of waited for.
 */
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { clipToNorm, l2Norm } from '#protocol/dp.ts';
import { encodeTensors } from '#protocol/safetensors.ts';
import { SecAggClient } from '#protocol/secagg/protocol.ts';
import { meanErrorBound, quantize, quantizedClipNorm } from '#protocol/secagg/quantize.ts';
import { decodeKeys, encodeKeys, encodeMasked, encodeReveal, encodeShares, fromBase64 } from '#protocol/secagg/wire.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  adminJson,
  api,
  base64,
  type Client,
  checkIn,
  createTask,
  downloadWeights,
  encodeUpdate,
  initialWeights,
  NUM_PARAMS,
  randomDelta,
  registerClient,
  split,
  stubOf,
  submit,
  TOPOLOGY,
} from './helpers.ts';

const W = 1000; // maxExamplesPerClient
const SECURE = { clipRange: 1, phaseSeconds: 600 };

async function secureTask(n: number, extra: Record<string, unknown> = {}) {
  return createTask({ clientsPerRound: n, overSelection: 1, minClients: 3, deadlineSeconds: 600, maxExamplesPerClient: W }, initialWeights(), {
    secureAggregation: SECURE,
    ...extra,
  });
}

function post(taskId: string, c: Client, round: number, what: string, body: unknown) {
  return api(`/tasks/${taskId}/rounds/${round}/secagg/${what}`, {
    method: 'POST',
    headers: { ...c.auth, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}
function get(taskId: string, c: Client, round: number, what: string, waitSeconds = 0) {
  return api(`/tasks/${taskId}/rounds/${round}/secagg/${what}?waitSeconds=${waitSeconds}`, { headers: c.auth });
}
function putMasked(taskId: string, c: Client, round: number, words: Uint32Array) {
  return api(`/tasks/${taskId}/rounds/${round}/secagg/masked`, {
    method: 'PUT',
    headers: { ...c.auth, 'content-type': 'application/octet-stream' },
    body: encodeMasked(words),
  });
}
async function code(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** The phase deadline has passed: the alarm ends the phase as its deadline would. */
async function expirePhase(taskId: string): Promise<void> {
  await runInDurableObject(stubOf(taskId), async (o: TaskAggregator) => {
    const task = (o as unknown as { task: { secagg: { endsAt: number } } }).task;
    task.secagg.endsAt = Date.now() - 1;
  });
  await runDurableObjectAlarm(stubOf(taskId));
}

async function phaseOf(taskId: string): Promise<string> {
  return runInDurableObject(stubOf(taskId), async (o: TaskAggregator) => (o as unknown as { task: { secagg: { phase: string } } }).task.secagg.phase);
}

interface Party {
  http: Client;
  sa: SecAggClient;
  delta: Float32Array;
  examples: number;
}

/** n clients assigned to round 1 and through the advertise phase. */
async function advertised(taskId: string, n: number): Promise<Party[]> {
  const parties: Party[] = [];
  for (let i = 0; i < n; i++) {
    const http = await registerClient(taskId);
    const a = await checkIn(taskId, http);
    expect(a.body.status).toBe('assigned');
    expect(a.body.secureAggregation).toMatchObject({ clipRange: 1, maxExamples: W, fractionBits: 24 });
    parties.push({ http, sa: new SecAggClient(http.clientId, taskId, 1), delta: randomDelta(100 + i, 0.8), examples: 50 + 37 * i });
  }
  for (const p of parties) expect((await post(taskId, p.http, 1, 'keys', encodeKeys(await p.sa.advertise()))).status).toBe(200);
  return parties;
}

async function share(taskId: string, parties: Party[]): Promise<{ k: number; t: number }> {
  let kt = { k: 0, t: 0 };
  for (const p of parties) {
    const roster = (await (await get(taskId, p.http, 1, 'roster')).json()) as any;
    expect(roster.status).toBe('ready');
    kt = { k: roster.k, t: roster.t };
    const peers = roster.neighbours.map((e: any) => decodeKeys({ curve: e.curve, cPublic: e.cPublic, sPublic: e.sPublic }, e.id));
    expect(peers).toHaveLength(roster.k);
    const sealed = await p.sa.shareKeys(
      [...peers],
      peers.map((x: { id: string }) => x.id),
      roster.t,
    );
    expect((await post(taskId, p.http, 1, 'shares', encodeShares(sealed))).status).toBe(200);
  }
  return kt;
}

const Q = { clipRange: 1, fractionBits: 24 };

async function mask(taskId: string, p: Party, words = quantize(p.delta, p.examples / W, Q)): Promise<Uint32Array> {
  const inbox = (await (await get(taskId, p.http, 1, 'inbox')).json()) as any;
  expect(inbox.status).toBe('ready');
  const y = await p.sa.maskedInput(
    words,
    inbox.shares.map((s: any) => ({ from: s.from, to: p.http.clientId, sealed: fromBase64(s.sealed, 'sealed', 512) })),
  );
  const res = await putMasked(taskId, p.http, 1, y);
  expect(res.status).toBe(200);
  return y;
}

async function reveal(taskId: string, p: Party): Promise<Response> {
  const req = (await (await get(taskId, p.http, 1, 'unmask')).json()) as any;
  expect(req.status).toBe('ready');
  return post(taskId, p.http, 1, 'reveal', encodeReveal(p.sa.unmask(req)));
}

describe('a secure-aggregation round through the aggregator', () => {
  it('n = 10, one drops before its masked input and two after: the published version is base + the survivors’ weighted mean, within the quantization bound', async () => {
    const { id } = await secureTask(10);
    const parties = await advertised(id, 10);
    expect(await phaseOf(id)).toBe('share'); // every assigned client advertised: the phase ended at once
    const { k, t } = await share(id, parties);
    expect({ k, t }).toEqual({ k: 9, t: 5 }); // n = 10: k = min(9, 2⌈log₂10⌉ + 2), t = ⌊k/2⌋ + 1
    expect(await phaseOf(id)).toBe('mask');
    const dropBefore = parties[3]!;
    const dropAfter = [parties[5]!, parties[8]!];
    const survivors = parties.filter((p) => p !== dropBefore);
    const stored = new Map<string, Uint32Array>();
    for (const p of survivors) stored.set(p.http.clientId, await mask(id, p));
    // A retry of the same bytes returns the same ack, counted once.
    const again = await putMasked(id, survivors[0]!.http, 1, stored.get(survivors[0]!.http.clientId)!);
    expect(again.status).toBe(200);
    expect(again.headers.get('fedge-replayed')).toBe('true');
    expect(await phaseOf(id)).toBe('mask'); // dropBefore never sent one
    await expirePhase(id);
    expect(await phaseOf(id)).toBe('unmask');

    // What the server holds now: each stored masked vector is unrelated to its client's quantized update.
    await runInDurableObject(stubOf(id), async (_o: TaskAggregator, state) => {
      for (const p of survivors) {
        const row = state.storage.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM secagg_masked WHERE client_id = ?`, p.http.clientId).one();
        const y = new Uint32Array(row.data);
        const x = quantize(p.delta, p.examples / W, { clipRange: 1, fractionBits: 24 });
        expect(y.filter((v, i) => v === x[i]).length).toBe(0);
      }
      // No example count is stored per client: the weights are inside the masked vectors.
      const counts = state.storage.sql.exec<{ n: number }>(`SELECT num_examples AS n FROM ledger`).toArray();
      expect(counts.every((r) => r.n === 0)).toBe(true);
    });

    for (const p of survivors.filter((p) => !dropAfter.includes(p))) expect((await reveal(id, p)).status).toBe(200);
    expect(await phaseOf(id)).toBe('unmask'); // two survivors never answered
    await expirePhase(id); // unmask deadline: 6 reveals ≥ t = 5 for every secret; the round closes and publishes

    const task = (await (await adminJson(`/tasks/${id}`, 'GET')).json()) as any;
    expect(task.currentVersion).toBe(1);
    expect(task.secureAggregation).toMatchObject(SECURE);
    const next = await downloadWeights(id, 1);
    const base = initialWeights();
    const totalW = survivors.reduce((a, p) => a + p.examples / W, 0);
    const bound = meanErrorBound(survivors.length, 24, totalW, 0.8);
    for (let j = 0; j < NUM_PARAMS; j++) {
      const exact = survivors.reduce((a, p) => a + (p.examples / W) * p.delta[j]!, 0) / totalW;
      // float32 rounding of base + mean on top of the quantization bound
      expect(Math.abs(next[j]! - (base[j]! + exact))).toBeLessThanOrEqual(bound + 2 ** -23);
    }
    const round = (await (await adminJson(`/tasks/${id}/rounds/1`, 'GET')).json()) as any;
    expect(round.status).toBe('closed');
    expect(round.accepted).toBe(9);
    expect(round.participants.map((p: any) => p.clientId).sort()).toEqual(survivors.map((p) => p.http.clientId).sort());
    // The version's example count comes from the summed weights: Σ numExamples of the survivors.
    const manifest = (await (await adminJson(`/tasks/${id}/models/1`, 'GET')).json()) as any;
    expect(manifest.numExamples).toBe(survivors.reduce((a, p) => a + p.examples, 0));
    // The next round opens in its advertise phase; the finished round's rows are gone.
    expect(await phaseOf(id)).toBe('advertise');
    const left = await runInDurableObject(
      stubOf(id),
      async (_o: TaskAggregator, state) =>
        state.storage.sql.exec<{ n: number }>(`SELECT (SELECT count(*) FROM secagg_masked) + (SELECT count(*) FROM secagg_shares) AS n`).one().n,
    );
    expect(left).toBe(0);
  });

  it('a client that drops before sharing is left out of every mask, and the round still unmasks', async () => {
    const { id } = await secureTask(6);
    const parties = await advertised(id, 6);
    const silent = parties[2]!;
    await share(
      id,
      parties.filter((p) => p !== silent),
    );
    await expirePhase(id); // share deadline: 5 of 6 shared
    expect(await phaseOf(id)).toBe('mask');
    const inbox = (await (await get(id, silent.http, 1, 'inbox')).json()) as any;
    expect(inbox.error.code).toBe('secagg_unknown_client');
    const live = parties.filter((p) => p !== silent);
    for (const p of live) await mask(id, p);
    expect(await phaseOf(id)).toBe('unmask'); // all of U2 sent theirs
    for (const p of live) expect((await reveal(id, p)).status).toBe(200);
    // Every survivor revealed: the round is closing, and its alarm (due now) publishes.
    await runDurableObjectAlarm(stubOf(id));
    const next = await downloadWeights(id, 1);
    const totalW = live.reduce((a, p) => a + p.examples / W, 0);
    const exact0 = live.reduce((a, p) => a + (p.examples / W) * p.delta[0]!, 0) / totalW;
    expect(Math.abs(next[0]! - (initialWeights()[0]! + exact0))).toBeLessThan(1e-5);
  });

  it('fewer masked inputs than t aborts the round with no version', async () => {
    const { id } = await secureTask(10);
    const parties = await advertised(id, 10);
    const { t } = await share(id, parties);
    for (const p of parties.slice(0, t - 1)) await mask(id, p);
    await expirePhase(id);
    const task = (await (await adminJson(`/tasks/${id}`, 'GET')).json()) as any;
    expect(task.currentVersion).toBe(0);
    expect(task.currentRound.round).toBe(2);
    const round = (await (await adminJson(`/tasks/${id}/rounds/1`, 'GET')).json()) as any;
    expect(round).toMatchObject({ status: 'abandoned', resultVersion: null });
    // A late masked input of the aborted round is for a round that is over.
    expect(await code(await putMasked(id, parties[t]!.http, 1, new Uint32Array(NUM_PARAMS + 1)))).toBe('secagg_wrong_round');
  });

  it('fewer reveals than t for a secret aborts the round at the unmask deadline, with no version', async () => {
    const { id } = await secureTask(10);
    const parties = await advertised(id, 10);
    const { t } = await share(id, parties);
    for (const p of parties) await mask(id, p);
    expect(await phaseOf(id)).toBe('unmask');
    for (const p of parties.slice(0, t - 1)) expect((await reveal(id, p)).status).toBe(200);
    await expirePhase(id);
    const task = (await (await adminJson(`/tasks/${id}`, 'GET')).json()) as any;
    expect(task.currentVersion).toBe(0);
    expect(((await (await adminJson(`/tasks/${id}/rounds/1`, 'GET')).json()) as any).status).toBe('abandoned');
  });
});

describe('secure-aggregation refusals', () => {
  it('out of phase, another round, unknown client, conflicting and malformed messages each get their code; retries are accepted', async () => {
    const { id } = await secureTask(4);
    const parties = await advertised(id, 3);
    const [a, b] = parties as [Party, Party];
    expect(await phaseOf(id)).toBe('advertise'); // 3 of 4 assigned
    // The same keys again: accepted again; other keys: a conflict.
    const keysA = encodeKeys(await new SecAggClient(a.http.clientId, id, 1).advertise());
    expect(await code(await post(id, a.http, 1, 'keys', keysA))).toBe('secagg_conflict');
    // Shares before the share phase.
    expect(await code(await post(id, a.http, 1, 'shares', { shares: [] }))).toBe('secagg_out_of_phase');
    // The roster is not out yet: a poll answers wait.
    expect(((await (await get(id, a.http, 1, 'roster')).json()) as any).status).toBe('wait');
    // Another round.
    expect(await code(await post(id, a.http, 2, 'keys', keysA))).toBe('secagg_wrong_round');
    // A client of the task that is not assigned to the round.
    const stranger = await registerClient(id);
    expect(await code(await post(id, stranger, 1, 'keys', keysA))).toBe('secagg_unknown_client');
    // Malformed keys: a key of the wrong length, or not base64.
    const fourth = await registerClient(id);
    expect((await checkIn(id, fourth)).body.status).toBe('assigned');
    expect(await code(await post(id, fourth, 1, 'keys', { ...keysA, cPublic: 'AAAA' }))).toBe('invalid_secagg_message');
    expect(await code(await post(id, fourth, 1, 'keys', { ...keysA, sPublic: '%%%%' }))).toBe('invalid_secagg_message');
    // A plaintext update is refused outright.
    expect((await submit(id, a.http, 1, encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 10 }))).body.error.code).toBe(
      'secure_aggregation_required',
    );
    // The deadline ends the advertise phase with the three that advertised.
    await expirePhase(id);
    expect(await phaseOf(id)).toBe('share');
    expect(await code(await post(id, fourth, 1, 'keys', keysA))).toBe('secagg_out_of_phase');
    expect(await code(await get(id, fourth, 1, 'roster'))).toBe('secagg_unknown_client');
    // Shares for a client that is not a neighbour, or missing one.
    expect(await code(await post(id, a.http, 1, 'shares', { shares: [{ to: stranger.clientId, sealed: 'AAAA' }] }))).toBe('invalid_secagg_message');
    expect(await code(await post(id, a.http, 1, 'shares', { shares: [] }))).toBe('invalid_secagg_message');
    // A masked input before the mask phase.
    expect(await code(await putMasked(id, a.http, 1, new Uint32Array(NUM_PARAMS + 1)))).toBe('secagg_out_of_phase');
    await share(id, parties);
    expect(await phaseOf(id)).toBe('mask');
    // A masked input of the wrong size; a reveal before the unmask phase.
    expect(await code(await putMasked(id, b.http, 1, new Uint32Array(NUM_PARAMS)))).toBe('invalid_secagg_message');
    expect(await code(await post(id, a.http, 1, 'reveal', { seedShares: {}, keyShares: {} }))).toBe('secagg_unknown_client');
    await mask(id, a);
    expect(await code(await post(id, a.http, 1, 'reveal', { seedShares: {}, keyShares: {} }))).toBe('secagg_out_of_phase');
    expect(await code(await putMasked(id, a.http, 1, new Uint32Array(NUM_PARAMS + 1)))).toBe('secagg_conflict');
  });

  it('a task without secure aggregation refuses its messages', async () => {
    const { id } = await createTask({ clientsPerRound: 3 });
    const c = await registerClient(id);
    await checkIn(id, c);
    expect(await code(await post(id, c, 1, 'keys', {}))).toBe('invalid_request');
    expect(await code(await get(id, c, 1, 'roster'))).toBe('secagg_not_enabled');
  });

  it('central DP composes: clients clip (less the quantization margin) and weigh 1, the aggregator noises the unmasked sum', async () => {
    const S = 1;
    const z = 2;
    const mu = 5;
    const { id } = await createTask({ clientsPerRound: mu, minClients: 3, deadlineSeconds: 600, maxExamplesPerClient: W }, initialWeights(), {
      secureAggregation: SECURE,
      privacy: { mode: 'central', noiseMultiplier: z, clipNorm: S, clipping: 'client', samplingRate: 1 },
    });
    const parties = await advertised(id, 6);
    expect(await phaseOf(id)).toBe('advertise'); // Poisson-drawn clients keep joining until the phase deadline
    await expirePhase(id);
    await share(id, parties);
    const clipTo = quantizedClipNorm(S, NUM_PARAMS, Q.fractionBits);
    const quantized = parties.map((p) => {
      const d = p.delta.slice();
      expect(clipToNorm(d, clipTo).clipped).toBe(true); // ‖Δ‖ ≈ 1.8 > S
      const words = quantize(d, p.examples / W, Q, 1);
      const back = Array.from(words.subarray(0, NUM_PARAMS), (u) => (u >= 2 ** 31 ? u - 2 ** 32 : u) * 2 ** -Q.fractionBits);
      expect(l2Norm(back)).toBeLessThanOrEqual(S); // the sensitivity the noise is calibrated to holds after rounding
      return { p, words, back };
    });
    for (const { p, words } of quantized) await mask(id, p, words);
    expect(await phaseOf(id)).toBe('unmask');
    for (const p of parties) expect((await reveal(id, p)).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));

    const manifest = (await (await adminJson(`/tasks/${id}/models/1`, 'GET')).json()) as any;
    expect(manifest.privacy).toMatchObject({ mode: 'central', clipping: 'client', clipNorm: S, noiseMultiplier: z, rounds: 1 });
    expect(manifest.privacy.epsilon).toBeGreaterThan(0);
    expect(manifest.numExamples).toBe(parties.reduce((a, p) => a + p.examples, 0));
    // next = base + (Σ clipped Δ + N(0, (zS)²)) / μ: the residual μ·(next − base) − Σ is the noise.
    const next = await downloadWeights(id, 1);
    const base = initialWeights();
    const noise = Array.from({ length: NUM_PARAMS }, (_, j) => mu * (next[j]! - base[j]!) - quantized.reduce((a, q) => a + q.back[j]!, 0));
    const sd = Math.sqrt(noise.reduce((a, x) => a + x * x, 0) / NUM_PARAMS);
    // 15 draws of N(0, 4): the sample sd lies in [0.5σ, 1.6σ] with probability above 0.999 (χ² with 15 degrees of freedom).
    expect(sd).toBeGreaterThan(0.5 * z * S);
    expect(sd).toBeLessThan(1.6 * z * S);
    const view = (await (await adminJson(`/tasks/${id}`, 'GET')).json()) as any;
    expect(view.privacySpent).toMatchObject({ rounds: 1, exhausted: false });
  });

  it('local DP composes: the version records its privacy and the task counts the release', async () => {
    const { id } = await secureTask(3, { privacy: { mode: 'local', noiseMultiplier: 1, clipNorm: 2 } });
    const parties = await advertised(id, 3);
    await share(id, parties);
    for (const p of parties) await mask(id, p);
    for (const p of parties) expect((await reveal(id, p)).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));
    const manifest = (await (await adminJson(`/tasks/${id}/models/1`, 'GET')).json()) as any;
    expect(manifest.privacy).toMatchObject({ mode: 'local', clipping: 'local', rounds: 1, noiseMultiplier: 1, clipNorm: 2 });
    const view = (await (await adminJson(`/tasks/${id}`, 'GET')).json()) as any;
    expect(view.privacySpent).toMatchObject({ rounds: 1 });
  });

  it('task creation refuses a strategy, privacy or size secure aggregation cannot run with', async () => {
    const refused = async (rounds: Record<string, unknown>, extra: Record<string, unknown>) => {
      const res = await adminJson('/tasks', 'POST', {
        name: 'x',
        modelTopology: TOPOLOGY,
        initialWeights: base64(encodeTensors(split(initialWeights()))),
        rounds: { clientsPerRound: 10, overSelection: 1, ...rounds },
        ...extra,
      });
      expect(res.status).toBe(400);
      return ((await res.json()) as any).error as { code: string; message: string };
    };
    expect(await refused({}, { secureAggregation: {}, strategy: { name: 'median' } })).toMatchObject({ code: 'invalid_secure_aggregation' });
    expect(await refused({}, { secureAggregation: {}, strategy: { name: 'fedbuff', bufferSize: 5 } })).toMatchObject({ code: 'invalid_secure_aggregation' });
    // Central DP: the aggregator cannot clip what it cannot see, nor count clipped updates for adaptive clipping.
    const central = { mode: 'central', noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.5 };
    expect(await refused({}, { secureAggregation: {}, privacy: central })).toMatchObject({
      code: 'invalid_secure_aggregation',
      message: /clipping = 'client'/,
    });
    expect(
      await refused({}, { secureAggregation: {}, privacy: { ...central, clipping: 'client', adaptiveClipping: { targetQuantile: 0.5, countNoise: 5 } } }),
    ).toMatchObject({
      code: 'invalid_secure_aggregation',
      message: /adaptive clipping/,
    });
    expect((await refused({ clientsPerRound: 2, minClients: 2 }, { secureAggregation: {} })).code).toBe('invalid_secure_aggregation');
    // 10,000 clients × clipRange 1000 leave 7 fraction bits under 2³¹: overflow-prone, refused.
    const big = await refused({ clientsPerRound: 10_000 }, { secureAggregation: { clipRange: 1000 } });
    expect(big.code).toBe('invalid_secure_aggregation');
    expect(big.message).toMatch(/fraction bits/);
    expect((await refused({}, { secureAggregation: { neighbours: 20 } })).code).toBe('invalid_secure_aggregation');
  });
});
