/**
 * @module End-to-end ingest benchmark: N clients submit 1M-parameter updates to one task's
 * Durable Object through `wrangler dev`, C at a time, with durable acknowledgement.
 *
 *   npm run bench:ingest -- [--clients 300] [--concurrency 50] [--params 1000000]
 *   npm run bench:ingest -- --strategy median|trimmedmean|krum   (a robust task: 100 clients)
 *   npm run bench:ingest -- --encoding float16|int8               (compressed updates; the reference
 *                                                                  is then the decoded updates')
 *
 * Prints JSON lines, then a summary: accepted updates/s, latency, 429/503/reset retries, workerd's
 * peak RSS (over the whole run, at each tenth of it, and its growth during the publish), publish
 * time (seen by the client, and by the DO's clock: last accept → round closed, after aggregation
 * and the R2 write), and the published version's max abs error against a float64 reference
 * computed here (FedAvg; for median and trimmed mean the exact order statistics; Krum is only
 * checked to lie within the updates' range). With a robust strategy every update is stored whole
 * and the publish reads them back by 64K-parameter ranges: the run shows that aggregation's memory
 * and time inside workerd itself. Clients retry what is safe (429 with Retry-After, 503,
 * connection resets) with the same bytes: the ledger makes that idempotent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeRange, encodeUpdate, type UpdateEncoding, viewUpdate } from '#protocol/encoding.ts';
import { UPDATE_META } from '#protocol/messages.ts';
import { concatTensors, decodeTensors, encodeRawTensors, encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import { workerdRss } from './workerd-rss.ts';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '50' },
    params: { type: 'string', default: '1000000' },
    pool: { type: 'string', default: '8' },
    strategy: { type: 'string', default: 'fedavg' },
    encoding: { type: 'string', default: 'float32' },
  },
});
const encoding = args.encoding as UpdateEncoding;
if (!['float32', 'float16', 'int8'].includes(encoding)) throw new Error('--encoding: float32, float16 or int8');
/** The strategies the bench knows, with the parameters of the strategies bench (test/bench/strategies.ts). */
const STRATEGIES: Record<string, Record<string, unknown>> = {
  fedavg: { name: 'fedavg' },
  median: { name: 'median' },
  trimmedmean: { name: 'trimmedmean', beta: 0.1 },
  krum: { name: 'krum', f: 10, m: 80 },
};
const strategy = STRATEGIES[args.strategy];
if (!strategy) throw new Error(`--strategy: one of ${Object.keys(STRATEGIES).join(', ')}`);
const robust = strategy.name !== 'fedavg';
/** Robust strategies accept at most 100 clients per round. */
const N = robust ? Math.min(100, Number(args.clients)) : Number(args.clients);
const C = Number(args.concurrency);
const P = Number(args.params);
const POOL = Number(args.pool);
const emit = (o: Record<string, unknown>) => console.log(JSON.stringify(o));

// One dense layer of P parameters (P rounded to a multiple of 1000): kernel [rows, 1000] and bias [1000].
const cols = 1000;
const rows = Math.max(1, Math.round(P / cols) - 1);
if ((rows + 1) * cols !== P) throw new Error(`--params must be a multiple of ${cols} (≥ ${2 * cols})`);
const tensors = [
  { name: 'dense/kernel', shape: [rows, cols] },
  { name: 'dense/bias', shape: [cols] },
];
const split = (flat: Float32Array) => splitFlat(tensors, flat);
function seeded(seed: number, n: number, scale: number): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

const stateDir = mkdtempSync(join(tmpdir(), 'fedge-bench-'));
const server = await startLocalServer({ port: await findFreePort(), stateDir, adminToken: 'bench-admin', onOutput: () => {} });
const api = `${server.url}/v1`;
const admin = { authorization: `Bearer ${server.adminToken}` };
emit({ name: 'server', startupMs: server.startupMs, url: server.url });

try {
  const base = seeded(1, P, 0.1);
  const created = await fetch(`${api}/tasks`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'ingest bench',
      modelTopology: denseTopology(rows, [{ name: 'dense', units: cols }]),
      initialWeights: Buffer.from(encodeTensors(split(base))).toString('base64'),
      rounds: { clientsPerRound: N, overSelection: 1, deadlineSeconds: 3600, maxExamplesPerClient: 1000 },
      strategy,
      updateEncoding: encoding,
    }),
  });
  const task = (await created.json()) as { id: string };
  if (created.status !== 201) throw new Error(`create task: ${created.status} ${JSON.stringify(task)}`);

  const sent = Array.from({ length: POOL }, (_, k) => seeded(100 + k, P, 0.01));
  // Each pool update encoded once in the task's encoding; the reference uses what the encoding keeps of it.
  const encoded = sent.map((d) => encodeUpdate(tensors, d, encoding).tensors);
  const deltas = encoded.map((t) => decodeRange(viewUpdate(t, tensors, encoding), 0, P));
  const clients: { token: string; body: Uint8Array; k: number; n: number }[] = [];
  for (let i = 0; i < N; i++) {
    const reg = (await (await fetch(`${api}/tasks/${task.id}/clients`, { method: 'POST', headers: admin })).json()) as { token: string };
    const ci = (await (await fetch(`${api}/tasks/${task.id}/checkin`, { method: 'POST', headers: { authorization: `Bearer ${reg.token}` } })).json()) as {
      status: string;
    };
    if (ci.status !== 'assigned') throw new Error(`client ${i} not assigned: ${JSON.stringify(ci)}`);
    const k = i % POOL;
    const n = 1 + (i % 50);
    clients.push({ token: reg.token, k, n, body: new Uint8Array(0) });
  }
  // Bodies are encoded just in time (a pool of POOL distinct deltas), so the driver's memory stays small.
  const encode = (c: (typeof clients)[number]) => encodeRawTensors(encoded[c.k]!, { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: String(c.n) });

  const stats = { accepted: 0, overloaded: 0, unavailable: 0, resets: 0, otherErrors: 0 };
  /** Every 20 ms: [time, RSS, anonymous RSS, updates accepted so far]; the publish window is cut out of it afterwards. */
  const sample = (): [number, number, number, number] => {
    const { rss, anon } = workerdRss(server.pid);
    return [Date.now(), rss, anon, stats.accepted];
  };
  const rssSamples = [sample()];
  const sampler = setInterval(() => rssSamples.push(sample()), 20);
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < clients.length) {
        const c = clients[next++]!;
        const body = encode(c);
        const started = performance.now();
        for (let attempt = 0; ; attempt++) {
          if (attempt > 50) throw new Error('too many retries');
          let res: Response;
          try {
            res = await fetch(`${api}/tasks/${task.id}/rounds/1/update`, {
              method: 'PUT',
              headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/octet-stream' },
              body,
            });
          } catch {
            stats.resets++;
            await new Promise((r) => setTimeout(r, 200 + Math.random() * 300));
            continue;
          }
          const text = await res.text();
          if (res.status === 200) {
            stats.accepted++;
            latencies.push(performance.now() - started);
            break;
          }
          if (res.status === 429 || res.status === 503) {
            if (res.status === 429) stats.overloaded++;
            else stats.unavailable++;
            const wait = Number(res.headers.get('retry-after') ?? 1) * 1000;
            await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
            continue;
          }
          stats.otherErrors++;
          throw new Error(`submit: ${res.status} ${text}`);
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!);

  // The last accept closed the round: wait for version 1.
  const tPublish = performance.now();
  for (;;) {
    const cur = (await (await fetch(`${api}/tasks/${task.id}/models/current`, { headers: admin })).json()) as { version: number };
    if (cur.version === 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const publishMs = Math.round(performance.now() - tPublish);
  clearInterval(sampler);
  // The DO's own clock: from the last accept to the round's close, which publish() stamps after
  // aggregating and writing the blob (the last ack may wait behind a long publish, so the client
  // side above can miss most of it).
  const roundInfo = (await (await fetch(`${api}/tasks/${task.id}/rounds/1`, { headers: admin })).json()) as {
    closedAt: string;
    participants: { acceptedAt: string }[];
  };
  const lastAccept = Math.max(...roundInfo.participants.map((p) => Date.parse(p.acceptedAt)));
  const closedAt = Date.parse(roundInfo.closedAt);
  const aggregateMs = closedAt - lastAccept;
  const peakRss = Math.max(...rssSamples.map(([, r]) => r));
  const before = rssSamples.filter(([t]) => t <= lastAccept).at(-1) ?? [0, 0, 0, 0];
  /** RSS as the run goes: the last sample at each tenth of the updates accepted (does it level off?). */
  const rssByTenth = Array.from({ length: 10 }, (_, i) => {
    const upTo = Math.ceil(((i + 1) * N) / 10);
    const s = rssSamples.filter(([, , , a]) => a <= upTo).at(-1);
    return s ? Math.round(s[1] / 2 ** 20) : null;
  });
  const during = rssSamples.filter(([t]) => t > lastAccept && t <= closedAt + 50);
  const rssBeforePublish = before[1];
  const peakPublishRss = Math.max(0, ...during.map(([, r]) => r));
  const anonGrowth = Math.max(0, ...during.map(([, , a]) => a)) - before[2];

  const blob = new Uint8Array(await (await fetch(`${api}/tasks/${task.id}/models/1/weights`, { headers: admin })).arrayBuffer());
  const flat = concatTensors(decodeTensors(blob).tensors);
  const weightOf = new Float64Array(POOL);
  let total = 0;
  for (const c of clients) {
    weightOf[c.k]! += c.n;
    total += c.n;
  }
  const countOf = new Float64Array(POOL);
  for (const c of clients) countOf[c.k]! += 1;
  let maxErr = 0;
  for (let i = 0; i < P; i++) {
    maxErr = Math.max(maxErr, Math.abs(flat[i]! - (base[i]! + reference(i))));
  }

  /** The float64 reference aggregate Δ at coordinate i (null: not checked). */
  function reference(i: number): number {
    if (strategy!.name === 'fedavg') {
      let s = 0;
      for (let k = 0; k < POOL; k++) s += weightOf[k]! * deltas[k]![i]!;
      return s / total;
    }
    // The round's N values at i, as the pool's distinct values with their multiplicities, sorted.
    const values: number[] = [];
    for (let k = 0; k < POOL; k++) for (let j = 0; j < countOf[k]!; j++) values.push(deltas[k]![i]!);
    values.sort((a, b) => a - b);
    if (strategy!.name === 'median') return N % 2 ? values[N >> 1]! : (values[N / 2 - 1]! + values[N / 2]!) / 2;
    if (strategy!.name === 'trimmedmean') {
      const t = Math.floor((strategy!.beta as number) * N);
      const kept = values.slice(t, N - t);
      return kept.reduce((a, b) => a + b, 0) / kept.length;
    }
    // Krum: the published Δ must lie within the updates' range at every coordinate.
    const d = flat[i]! - base[i]!;
    return d >= values[0]! - 1e-6 && d <= values[N - 1]! + 1e-6 ? d : Number.NaN;
  }
  const summary = {
    name: 'ingest',
    clients: N,
    concurrency: C,
    params: P,
    bodyBytes: encode(clients[0]!).byteLength,
    seconds: Number(seconds.toFixed(2)),
    acceptedPerSecond: Number((stats.accepted / seconds).toFixed(1)),
    ...stats,
    latencyMs: { p50: pct(0.5), p95: pct(0.95), max: pct(1) },
    strategy,
    encoding,
    workerdPeakRssMiB: Math.round(peakRss / 2 ** 20),
    workerdRssBeforePublishMiB: Math.round(rssBeforePublish / 2 ** 20),
    workerdRssMiBAtEachTenthOfTheRun: rssByTenth,
    workerdRssGrowthDuringPublishMiB: Math.round((peakPublishRss - rssBeforePublish) / 2 ** 20),
    workerdAnonRssGrowthDuringPublishMiB: Math.round(anonGrowth / 2 ** 20),
    publishMs,
    lastAcceptToCloseMs: aggregateMs,
    maxAbsErrorVsFloat64Reference: maxErr,
  };
  emit(summary);
} finally {
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
