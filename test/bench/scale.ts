/**
 * @module Sharded-round benchmark: one round of N lightweight clients (a P-parameter model) on
 * `wrangler dev`, for each shard count S, every client checking in and submitting once, C at a time.
 *
 *   npm run bench:scale -- [--clients 10000] [--params 10000] [--concurrency 100] [--shards 1,2,4,8]
 *
 * Each S runs on a fresh `wrangler dev` (so its peak RSS is its own). Prints a JSON line per S:
 * check-ins and accepted updates per second over the round, p50/p95 latency of the check-in and of
 * the update's ack, the time from the last ack to the published version (seen by the client) and
 * from the last accept to the close (the master's clock), workerd's peak RSS, and the published
 * version's max abs error against a float64 FedAvg reference. Registration is not timed.
 *
 * Every object of a round runs in the one workerd process here, on a 2-core machine shared with the
 * load generator: S > 1 cannot show Cloudflare's parallelism, only what sharding costs and that a
 * 10,000-client round goes through (docs/scale.md models the rest).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { UPDATE_META } from '#protocol/messages.ts';
import { concatTensors, decodeTensors, encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import { workerdRss } from './workerd-rss.ts';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    params: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '100' },
    shards: { type: 'string', default: '1,2,4,8' },
    pool: { type: 'string', default: '16' },
  },
});
const N = Number(args.clients);
const P = Number(args.params);
const C = Number(args.concurrency);
const POOL = Number(args.pool);
const SHARDS = args.shards.split(',').map(Number);
const emit = (o: Record<string, unknown>) => console.log(JSON.stringify(o));

const cols = 100;
const rows = Math.round(P / cols) - 1;
if ((rows + 1) * cols !== P || rows < 1) throw new Error(`--params must be a multiple of ${cols} (≥ ${2 * cols})`);
const tensors = [
  { name: 'dense/kernel', shape: [rows, cols] },
  { name: 'dense/bias', shape: [cols] },
];
function seeded(seed: number, n: number, scale: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `work(i)` for i < n, `c` at a time. */
async function pool(n: number, c: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

/** fetch with the retries a real client makes: 429/503 after Retry-After, connection resets after a pause. */
async function call(url: string, init: RequestInit): Promise<{ status: number; body: any }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch {
      await sleep(200 + Math.random() * 300);
      continue;
    }
    const body = await res.json().catch(() => null);
    if (res.status === 429 || res.status === 503) {
      await sleep(Number(res.headers.get('retry-after') ?? 1) * 1000 * (0.5 + Math.random()));
      continue;
    }
    return { status: res.status, body };
  }
  throw new Error(`${url}: too many retries`);
}

const pct = (xs: number[], p: number) => Math.round(xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!);

async function run(shards: number): Promise<Record<string, unknown>> {
  const stateDir = mkdtempSync(join(tmpdir(), 'fedge-scale-'));
  const server = await startLocalServer({ port: await findFreePort(), stateDir, adminToken: 'bench-admin', onOutput: () => {} });
  const api = `${server.url}/v1`;
  const admin = { authorization: `Bearer ${server.adminToken}` };
  try {
    const base = seeded(1, P, 0.1);
    const created = await call(`${api}/tasks`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: `scale bench S=${shards}`,
        modelTopology: denseTopology(rows, [{ name: 'dense', units: cols }]),
        initialWeights: Buffer.from(encodeTensors(splitFlat(tensors, base))).toString('base64'),
        rounds: { clientsPerRound: N, overSelection: 1, deadlineSeconds: 3600, maxExamplesPerClient: 1000 },
        maxClients: N,
        shards,
      }),
    });
    if (created.status !== 201) throw new Error(`create task: ${created.status} ${JSON.stringify(created.body)}`);
    const taskId = created.body.id as string;
    const tokens: string[] = new Array(N);
    const tReg = performance.now();
    await pool(N, 50, async (i) => {
      const reg = await call(`${api}/tasks/${taskId}/clients`, { method: 'POST', headers: admin });
      if (reg.status !== 201) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.body)}`);
      tokens[i] = reg.body.token;
    });
    const registerSeconds = (performance.now() - tReg) / 1000;

    const deltas = Array.from({ length: POOL }, (_, k) => seeded(100 + k, P, 0.01));
    const bodies = deltas.map((d, k) => encodeTensors(splitFlat(tensors, d), { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: String(1 + k) }));
    const checkInMs: number[] = [];
    const stats = { roundFull: 0 };
    const ackMs: number[] = [];
    let peakRss = workerdRss(server.pid).rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, workerdRss(server.pid).rss);
    }, 50);
    const t0 = performance.now();
    let lastAck = 0;
    await pool(N, C, async (i) => {
      const auth = { authorization: `Bearer ${tokens[i]}` };
      const s0 = performance.now();
      let ci = await call(`${api}/tasks/${taskId}/checkin`, { method: 'POST', headers: auth });
      checkInMs.push(performance.now() - s0);
      // A shard out of slots says come back soon (another shard's unused slots return at its next report).
      while (ci.body?.status === 'retry_later' && ci.body.reason === 'round_full') {
        stats.roundFull++;
        await sleep(ci.body.retryAfterSeconds * 1000);
        ci = await call(`${api}/tasks/${taskId}/checkin`, { method: 'POST', headers: auth });
      }
      if (ci.body?.status !== 'assigned') throw new Error(`client ${i} not assigned: ${ci.status} ${JSON.stringify(ci.body)}`);
      const s1 = performance.now();
      const ack = await call(`${api}/tasks/${taskId}/rounds/1/update`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/octet-stream' },
        body: bodies[i % POOL]!,
      });
      if (ack.status !== 200) throw new Error(`submit ${i}: ${ack.status} ${JSON.stringify(ack.body)}`);
      lastAck = performance.now();
      ackMs.push(lastAck - s1);
    });
    const seconds = (lastAck - t0) / 1000;
    for (;;) {
      const cur = await call(`${api}/tasks/${taskId}/models/current`, { headers: admin });
      if (cur.body?.version === 1) break;
      await sleep(20);
    }
    const publishMs = Math.round(performance.now() - lastAck);
    clearInterval(sampler);
    const round = await call(`${api}/tasks/${taskId}/rounds/1`, { headers: admin });
    const lastAccept = Math.max(...(round.body.participants as { acceptedAt: string }[]).map((p) => Date.parse(p.acceptedAt)));

    const blob = await fetch(`${api}/tasks/${taskId}/models/1/weights`, { headers: admin });
    const flat = concatTensors(decodeTensors(new Uint8Array(await blob.arrayBuffer())).tensors);
    const weights = new Float64Array(POOL);
    for (let i = 0; i < N; i++) weights[i % POOL]! += 1 + (i % POOL);
    const W = weights.reduce((a, b) => a + b, 0);
    let maxErr = 0;
    for (let j = 0; j < P; j++) {
      let s = 0;
      for (let k = 0; k < POOL; k++) s += weights[k]! * deltas[k]![j]!;
      maxErr = Math.max(maxErr, Math.abs(flat[j]! - (base[j]! + s / W)));
    }
    checkInMs.sort((a, b) => a - b);
    ackMs.sort((a, b) => a - b);
    return {
      name: 'scale',
      shards,
      clients: N,
      params: P,
      concurrency: C,
      registerSeconds: Number(registerSeconds.toFixed(1)),
      roundSeconds: Number(seconds.toFixed(1)),
      acceptedPerSecond: Number((N / seconds).toFixed(1)),
      checkInMs: { p50: pct(checkInMs, 0.5), p95: pct(checkInMs, 0.95) },
      ackMs: { p50: pct(ackMs, 0.5), p95: pct(ackMs, 0.95) },
      lastAckToPublishedMs: publishMs,
      lastAcceptToCloseMs: Date.parse(round.body.closedAt) - lastAccept,
      roundFullRetries: stats.roundFull,
      accepted: round.body.accepted,
      participants: round.body.participants.length,
      workerdPeakRssMiB: Math.round(peakRss / 2 ** 20),
      maxAbsErrorVsFloat64Reference: maxErr,
    };
  } finally {
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const results = [];
for (const s of SHARDS) {
  const r = await run(s);
  emit(r);
  results.push(r);
}
const one = results.find((r) => r.shards === 1);
if (one)
  emit({
    name: 'summary',
    acceptedPerSecondVsOneShard: Object.fromEntries(
      results.map((r) => [r.shards, Number(((r.acceptedPerSecond as number) / (one.acceptedPerSecond as number)).toFixed(2))]),
    ),
  });
