/**
 * @module Large-model benchmark: one round of a P-parameter model (default 100M, 400 MB of
 * float32) with a few clients on `wrangler dev` (default settings: split into ranges of
 * 2,097,152 parameters above 4M), through the SDK: the initial weights uploaded in chunks
 * (FedgeAdmin's path), each client's Δ sent in chunks and committed (FedgeClient.submitUpdate),
 * the close (each range object sums and steps its slice, writes its part of the multipart upload),
 * and the new version downloaded and verified (SHA-256) by a client.
 *
 *   npm run bench:large -- [--params 100000000] [--clients 3] [--encoding float32]
 *
 * Prints one JSON line: times of each phase, MB/s, workerd's RSS before, at its peak during the
 * uploads and during the close, and the published version's max abs error against a float64
 * FedAvg reference. Every object runs in the one workerd process here (one isolate for them
 * all), so per-object memory cannot be read from outside: the RSS rise during the close, with
 * CLOSE_PARALLEL range objects working at once, bounds it (docs/scale.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import { accumulateWasm } from '../../aggregator/src/kernels/wasm-node.ts';
import { sumAndStep } from '../../aggregator/src/master/range-step.ts';
import { CLOSE_PARALLEL, RANGE_PARAMS } from '../../aggregator/src/master/ranges.ts';
import { FedgeClient } from '../../client-sdk/src/index.ts';
import type { UpdateEncoding } from '../../client-sdk/src/protocol/encoding.ts';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import { workerdRss } from './workerd-rss.ts';

const { values: args } = parseArgs({
  options: {
    params: { type: 'string', default: '100000000' },
    clients: { type: 'string', default: '3' },
    encoding: { type: 'string', default: 'float32' },
  },
});
const P = Number(args.params);
const N = Number(args.clients);
const encoding = args.encoding as UpdateEncoding;
const cols = 10_000;
const rows = P / cols - 1;
if (!Number.isInteger(rows) || rows < 1) throw new Error(`--params must be a multiple of ${cols} (≥ ${2 * cols})`);
const MB = 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function seeded(seed: number, n: number, scale: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

async function json(res: Response): Promise<any> {
  const body = await res.json();
  if (!res.ok) throw new Error(`${res.url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * What one range object holds at its close, measured: the same function it runs (sumAndStep), here
 * alone in Node, for a range of RANGE_PARAMS and N clients' chunks (float32). The growth of the
 * process's RSS from before it (after a GC) to its peak (sampled at each step; garbage not yet
 * collected counts too, so an upper bound) is the object's working set; the chunks it reads
 * (SQLite rows in the object) are made beforehand and not counted.
 */
async function oneRangeClose(): Promise<{ allocatedMiB: number; rangeMiB: number }> {
  const R = RANGE_PARAMS;
  const chunks = new Map<string, Float32Array>(Array.from({ length: N }, (_, i) => [`c${i}`, seeded(500 + i, R, 0.01)]));
  const baseSlice = seeded(2, R, 0.1);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().rss;
  let peakBytes = before;
  const sample = () => {
    peakBytes = Math.max(peakBytes, process.memoryUsage().rss);
  };
  const { next } = await sumAndStep(
    {
      length: R,
      encoding: 'float32',
      clients: [...chunks.keys()].map((clientId, i) => ({ clientId, weight: i + 1, numExamples: i + 1 })),
      numExamples: 6,
      strategy: { name: 'fedavg' },
    },
    {
      whole: (clientId, into) => {
        (into.data as Float32Array).set(chunks.get(clientId)!);
        sample();
      },
      piece: (clientId, start, n) => chunks.get(clientId)!.slice(start, start + n),
    },
    async () => {
      sample();
      const b = baseSlice.slice(); // the R2 read of the base slice
      sample();
      return b;
    },
    null,
    accumulateWasm,
  );
  sample();
  if (next.length !== R) throw new Error('range step');
  return { allocatedMiB: Math.round((peakBytes - before) / 2 ** 20), rangeMiB: (R * 4) / 2 ** 20 };
}
const perObject = await oneRangeClose();

const stateDir = mkdtempSync(join(tmpdir(), 'fedge-large-'));
const server = await startLocalServer({ port: await findFreePort(), stateDir, adminToken: 'bench-admin', onOutput: () => {} });
const api = `${server.url}/v1`;
const admin = { authorization: `Bearer ${server.adminToken}` };
let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, workerdRss(server.pid).rss);
}, 25);
const phasePeak = () => {
  const p = peak;
  peak = workerdRss(server.pid).rss;
  return Math.round(p / 2 ** 20);
};
try {
  const rssStart = Math.round(workerdRss(server.pid).rss / 2 ** 20);
  const base = seeded(1, P, 0.1);

  // Version 0: the weights in chunks (what FedgeAdmin.createTask does above 32 MiB), then the task.
  const t0 = performance.now();
  const upload = await json(
    await fetch(`${api}/weight-uploads`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ numParams: P }) }),
  );
  for (let k = 0; k < upload.chunks; k++) {
    const slice = base.subarray(k * upload.chunkParams, Math.min(P, (k + 1) * upload.chunkParams));
    await json(
      await fetch(`${api}/weight-uploads/${upload.uploadId}/chunks/${k}`, {
        method: 'PUT',
        headers: { ...admin, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(slice.buffer as ArrayBuffer, slice.byteOffset, slice.byteLength),
      }),
    );
  }
  const t1 = performance.now();
  const task = await json(
    await fetch(`${api}/tasks`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: `large model ${P}`,
        modelTopology: denseTopology(rows, [{ name: 'dense', units: cols }]),
        initialWeightsUpload: upload.uploadId,
        rounds: { clientsPerRound: N, overSelection: 1, deadlineSeconds: 3600 },
        updateEncoding: encoding,
      }),
    }),
  );
  const t2 = performance.now();
  const rssCreate = phasePeak();

  const clients: FedgeClient[] = [];
  for (let i = 0; i < N; i++) {
    const reg = await json(await fetch(`${api}/tasks/${task.id}/clients`, { method: 'POST', headers: admin }));
    clients.push(new FedgeClient({ baseUrl: server.url, taskId: task.id, token: reg.token, timeoutMs: 600_000 }));
  }
  const deltas = Array.from({ length: N }, (_, i) => seeded(100 + i, P, 0.01));
  const n = Array.from({ length: N }, (_, i) => 10 * (i + 1));
  // The clients upload one after another: this machine has two cores, so parallel uploads would only share them.
  const uploadSeconds: number[] = [];
  let lastAck = 0;
  for (const [i, c] of clients.entries()) {
    const a = await c.checkIn();
    if (a.status !== 'assigned' || !a.chunked) throw new Error(`client ${i}: ${JSON.stringify(a)}`);
    const s = performance.now();
    await c.submitUpdate({ round: 1, baseVersion: 0, delta: deltas[i]!, numExamples: n[i]! });
    lastAck = performance.now();
    uploadSeconds.push((lastAck - s) / 1000);
  }
  const rssUploads = phasePeak();
  for (;;) {
    const cur = await fetch(`${api}/tasks/${task.id}`, { headers: admin }).then((r) => r.json() as Promise<any>);
    if (cur.currentVersion === 1) break;
    await sleep(20);
  }
  const closeSeconds = (performance.now() - lastAck) / 1000;
  const rssClose = phasePeak();
  const round = await json(await fetch(`${api}/tasks/${task.id}/rounds/1`, { headers: admin }));
  const lastAccept = Math.max(...(round.participants as { acceptedAt: string }[]).map((p) => Date.parse(p.acceptedAt)));

  const d0 = performance.now();
  const published = (await clients[0]!.getWeights(1)).flat; // downloads and checks its SHA-256
  const downloadSeconds = (performance.now() - d0) / 1000;
  clearInterval(sampler);
  const W = n.reduce((a, b) => a + b, 0);
  let maxErr = 0;
  for (let j = 0; j < P; j++) {
    let s = 0;
    for (let i = 0; i < N; i++) s += n[i]! * deltas[i]![j]!;
    maxErr = Math.max(maxErr, Math.abs(published[j]! - (base[j]! + s / W)));
  }
  const bytes = P * 4;
  console.log(
    JSON.stringify({
      name: 'large-model',
      params: P,
      clients: N,
      encoding,
      ranges: task.chunked.chunks,
      rangeParams: task.chunked.chunkParams,
      closeParallel: CLOSE_PARALLEL,
      version0: { uploadSeconds: +((t1 - t0) / 1000).toFixed(1), assembleSeconds: +((t2 - t1) / 1000).toFixed(1) },
      updateUploadSeconds: uploadSeconds.map((s) => +s.toFixed(1)),
      updateUploadMBps: uploadSeconds.map((s) => +(bytes / MB / s).toFixed(0)),
      lastAckToPublishedSeconds: +closeSeconds.toFixed(1),
      lastAcceptToCloseSeconds: +((Date.parse(round.closedAt) - lastAccept) / 1000).toFixed(1),
      downloadSeconds: +downloadSeconds.toFixed(1),
      workerdRssMiB: { start: rssStart, createPeak: rssCreate, uploadsPeak: rssUploads, closePeak: rssClose },
      oneRangeCloseInNode: { rangeFloat32MiB: perObject.rangeMiB, rssGrowthMiB: perObject.allocatedMiB },
      maxAbsErrorVsFloat64Reference: maxErr,
    }),
  );
} finally {
  clearInterval(sampler);
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
