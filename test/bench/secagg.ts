/**
 * @module Secure aggregation's cost per client and per round against plaintext FedAvg: CPU time of
 * each client's four steps and of the server's unmasking, and the bytes of every message as the
 * wire sends them (protocol/secagg/wire.ts: JSON with base64, the masked input as raw words), for
 * a 100,000-parameter model at n = 10, 50, 100 clients.
 *
 *   npm run bench:secagg                          (= node test/bench/secagg.ts)
 *   node test/bench/secagg.ts --params 100000 --n 10,50,100 --drop 0.1
 *
 * `--drop` (default 0.1): the share of clients that drop after sharing keys and before their masked
 * input, so the server rebuilds their keys and removes their pairwise masks (the expensive path).
 * The steps run in this one process, each client's timed with `process.cpuUsage()` (user + system
 * CPU). Plaintext bytes are a safetensors update of the same Δ with fedge's metadata, the body of
 * `PUT …/update`. Downloads of the model are the same with and without secure aggregation and are
 * left out. The server's share is what the aggregator does at the close (summing the masked
 * vectors, rebuilding secrets from t shares, re-expanding masks) without the SQLite reads.
 */
import { parseArgs } from 'node:util';
import { ModularSum } from '../../aggregator/src/kernels/modular-sum.ts';
import { createRunningSum } from '../../aggregator/src/kernels/running-sum.ts';
import { accumulateWasm } from '../../aggregator/src/kernels/wasm-node.ts';
import { UPDATE_META } from '../../client-sdk/src/protocol/messages.ts';
import { encodeTensors } from '../../client-sdk/src/protocol/safetensors.ts';
import { neighbours, secAggParams } from '../../client-sdk/src/protocol/secagg/graph.ts';
import { addMask } from '../../client-sdk/src/protocol/secagg/prg.ts';
import { type Advertisement, type Revealed, SecAggClient, unmaskSum } from '../../client-sdk/src/protocol/secagg/protocol.ts';
import { dequantizeMean, fractionBits, quantize } from '../../client-sdk/src/protocol/secagg/quantize.ts';
import { encodeKeys, encodeMasked, encodeReveal, encodeShares } from '../../client-sdk/src/protocol/secagg/wire.ts';
import { rng } from '../shared/random.ts';

const { values } = parseArgs({
  options: { params: { type: 'string', default: '100000' }, n: { type: 'string', default: '10,50,100' }, drop: { type: 'string', default: '0.1' } },
});
const d = Number(values.params);
const sizes = values.n.split(',').map(Number);
const dropShare = Number(values.drop);

const jsonBytes = (x: unknown) => new TextEncoder().encode(JSON.stringify(x)).length;
const cpuMs =
  <T>(f: () => Promise<T>) =>
  async (): Promise<[T, number]> => {
    const t0 = process.cpuUsage();
    const out = await f();
    const t = process.cpuUsage(t0);
    return [out, (t.user + t.system) / 1000];
  };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`secure aggregation, ${d.toLocaleString('en')} parameters, ${Math.round(dropShare * 100)}% drop after sharing (median per client)\n`);
console.log('    n   k   t | client CPU ms: keys  share   mask unmask  total | sent KB  recv KB | plaintext KB | upload ratio | server ms');
for (const n of sizes) {
  const ids = Array.from({ length: n }, (_, i) => `client-${String(i).padStart(4, '0')}`);
  const { k, t } = secAggParams(n);
  const graph = neighbours(ids, k);
  const clients = ids.map((id) => new SecAggClient(id, 'bench-task', 1));
  const next = rng(7);
  const deltas = ids.map(() => Float32Array.from({ length: d }, () => (next() * 2 - 1) * 0.05));
  const q = { clipRange: 1, fractionBits: fractionBits(n, 1) };
  const cost = ids.map(() => ({ keys: 0, share: 0, mask: 0, unmask: 0, sent: 0, recv: 0 }));

  const roster: Advertisement[] = [];
  for (const [i, c] of clients.entries()) {
    const [a, ms] = await cpuMs(() => c.advertise())();
    roster.push(a);
    cost[i]!.keys = ms;
    cost[i]!.sent += jsonBytes(encodeKeys(a));
  }
  const byId = new Map(roster.map((a) => [a.id, a]));
  const outbox = [];
  for (const [i, c] of clients.entries()) {
    const mine = graph.get(c.id)!;
    const peers = mine.map((v) => byId.get(v)!);
    cost[i]!.recv += jsonBytes({ status: 'ready', k, t, neighbours: peers.map((p) => ({ id: p.id, ...encodeKeys(p) })) });
    const [sealed, ms] = await cpuMs(() => c.shareKeys(peers, mine, t))();
    cost[i]!.share = ms;
    cost[i]!.sent += jsonBytes(encodeShares(sealed));
    outbox.push(...sealed);
  }
  const dropped = new Set(ids.filter(() => next() < dropShare).slice(0, n - Math.max(3, t)));
  const masked = new Map<string, Uint32Array>();
  for (const [i, c] of clients.entries()) {
    if (dropped.has(c.id)) continue;
    const inbox = outbox.filter((m) => m.to === c.id);
    cost[i]!.recv += jsonBytes({ status: 'ready', shares: inbox.map((m) => ({ from: m.from, sealed: Buffer.from(m.sealed).toString('base64') })) });
    const [y, ms] = await cpuMs(() => c.maskedInput(quantize(deltas[i]!, 0.5, q), inbox))();
    cost[i]!.mask = ms;
    cost[i]!.sent += encodeMasked(y).length;
    masked.set(c.id, y);
  }
  const survivors = [...masked.keys()];
  const revealed: Revealed[] = [];
  for (const [i, c] of clients.entries()) {
    if (!masked.has(c.id)) continue;
    const mine = graph.get(c.id)!;
    const request = { survivors: mine.filter((v) => masked.has(v)), dropped: mine.filter((v) => dropped.has(v)) };
    cost[i]!.recv += jsonBytes({ status: 'ready', ...request });
    const [r, ms] = await cpuMs(async () => c.unmask(request))();
    cost[i]!.unmask = ms;
    cost[i]!.sent += jsonBytes(encodeReveal(r));
    revealed.push(r);
  }
  // The server: the sum of the masked vectors (the Wasm modular kernel, as the aggregator does), then the unmasking in place.
  const acc = new ModularSum(d + 1, accumulateWasm);
  const [sum, serverMs] = await cpuMs(async () => {
    for (const y of masked.values()) acc.add(y, 1);
    return unmaskSum({ taskId: 'bench-task', round: 1, t, roster, neighbours: graph, sum: acc, survivors, dropped: [...dropped], revealed });
  })();
  const mean = dequantizeMean(sum);
  acc.dispose();
  // The summing alone, Wasm against the plain-JS loop (prg.addMask), and plaintext FedAvg's server
  // work on the same survivors (the float64 running sum over their float32 Δs, then the mean).
  const sumOnly = (add: (s: Uint32Array, y: Uint32Array) => void, s: Uint32Array) =>
    cpuMs(async () => {
      for (const y of masked.values()) add(s, y);
    })();
  const wasmSum = new ModularSum(d + 1, accumulateWasm);
  const [, wasmSumMs] = await sumOnly((_, y) => wasmSum.add(y, 1), wasmSum.words);
  const [, jsSumMs] = await sumOnly((s, y) => addMask(s, y, 1), new Uint32Array(d + 1));
  wasmSum.dispose();
  const [, plainServerMs] = await cpuMs(async () => {
    const rs = createRunningSum(d, { wasm: accumulateWasm });
    for (const u of survivors) rs.add(deltas[ids.indexOf(u)]!, 1);
    rs.finalizeInto(new Float32Array(d), new Float32Array(d));
    rs.dispose();
  })();
  const exact0 = survivors.reduce((a, u) => a + deltas[ids.indexOf(u)]![0]!, 0) / survivors.length;
  if (Math.abs(mean[0]! - exact0) > 1e-5) throw new Error(`unmasked mean is wrong: ${mean[0]} vs ${exact0}`);

  const encodePlain = (i: number) =>
    encodeTensors([{ name: 'w', shape: [d], data: deltas[i]! }], { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: '100' });
  const plaintext = encodePlain(0).length;
  // A plaintext client's own work per round besides training: encoding its update.
  const plainCpu: number[] = [];
  for (let i = 0; i < Math.min(n, 20); i++) plainCpu.push((await cpuMs(async () => encodePlain(i))())[1]);
  const live = cost.filter((_, i) => !dropped.has(ids[i]!));
  const m = (f: (c: (typeof cost)[number]) => number) => median(live.map(f));
  const maskedBytes = (d + 1) * 4;
  const f1 = (x: number) => x.toFixed(1).padStart(6);
  console.log(
    `${String(n).padStart(5)} ${String(k).padStart(3)} ${String(t).padStart(3)} |               ${f1(m((c) => c.keys))} ${f1(m((c) => c.share))} ${f1(m((c) => c.mask))} ${f1(m((c) => c.unmask))} ${f1(m((c) => c.keys + c.share + c.mask + c.unmask))} | ${(m((c) => c.sent) / 1024).toFixed(1).padStart(7)} ${(m((c) => c.recv) / 1024).toFixed(1).padStart(8)} | ${(plaintext / 1024).toFixed(1).padStart(12)} | ${(m((c) => c.sent) / plaintext).toFixed(4).padStart(12)} | ${serverMs.toFixed(0).padStart(9)}`,
  );
  const total = m((c) => c.keys + c.share + c.mask + c.unmask);
  console.log(
    `      client CPU against plaintext (encoding the update, ${median(plainCpu).toFixed(2)} ms): ${(total / median(plainCpu)).toFixed(0)}×, +${(total - median(plainCpu)).toFixed(1)} ms; server: ${serverMs.toFixed(0)} ms against plaintext FedAvg's ${plainServerMs.toFixed(1)} ms (${(serverMs / plainServerMs).toFixed(0)}×); summing the ${survivors.length} masked vectors: Wasm ${wasmSumMs.toFixed(2)} ms, JS ${jsSumMs.toFixed(2)} ms (${(jsSumMs / wasmSumMs).toFixed(1)}×)`,
  );
  console.log(
    `      masked vector ${maskedBytes} B = ${(maskedBytes / plaintext).toFixed(4)} × plaintext; key-exchange bytes (all but the masked vector): sent ${((m((c) => c.sent) - maskedBytes) / 1024).toFixed(1)} KB, received ${(m((c) => c.recv) / 1024).toFixed(1)} KB for k = ${k}; ${dropped.size} dropped`,
  );
}
