/**
 * @module Strategy benchmark: the server-side aggregation work of one round, per strategy, for 100
 * updates of 1,000,000 float32 parameters, as a ratio to FedAvg's streaming kernel in the same run,
 * with the peak extra memory each one needs.
 *
 *   npm run bench:strategies                        (= node test/bench/strategies.ts)
 *   npx node test/bench/strategies.ts --runs 7      timed rounds per robust row (default 5, at least 3;
 *                                                   streaming rows get 5x as many); medians reported
 *   npx node test/bench/strategies.ts --seed 2      another seeded data set (default 1)
 *
 * What one row times mirrors `TaskAggregator` (aggregator/src/master/task-aggregator.ts), minus
 * the storage and network I/O it cannot reproduce (SQLite, R2, D1):
 *
 * - streaming strategies (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad, norm bounding):
 *   `reset`, then per update `prepareUpdate` (norm clipping, if any) and `add` into the wasm
 *   float64 running sum (the copy path: the DO adds the decoded body, not a staged view), then the
 *   publish step: `finalizeInto(base, next)` for FedAvg/FedProx, otherwise `finalizeInto` to the
 *   mean update, a copy of the stored server state (as `readStrategyState` materializes it) and
 *   `strategy.apply`. In the DO the adds happen as updates arrive, spread over the round;
 * - FedBuff: one full buffer of the 100 updates, each added with its staleness weight
 *   nᵢ(1 + sᵢ)^−a (sᵢ seeded, 0..4), the mean rescaled to the example-count denominator, `apply`;
 * - robust strategies (median, trimmed mean, Krum, Multi-Krum): `createStrategy(...)
 *   .aggregateByRanges` with a reader that returns, for one 64K-parameter range, a fresh copy of
 *   the stored chunk of every update (SQLite hands back a new ArrayBuffer per row read; here the
 *   "stored chunks" are 256 KiB ranges of the updates held in memory), then `apply`.
 *
 * Rounds are timed round-robin (every strategy in every repetition, a forced GC before each, not
 * timed) so machine-load drift hits every row alike; the ratio is median / FedAvg's median.
 * Memory is measured in two extra untimed rounds per strategy, from a baseline taken after a
 * forced GC with the data, the running sum and the base model already allocated: "live" forces a GC before every sample (what the round really
 * retains), "lazy" does not (what the process holds before V8 gets round to collecting garbage).
 * Samples are taken after every range read / add and after finalize/apply.
 *
 * Prints one JSON object per row, then a table. See test/bench/README.md.
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createRunningSum } from '../../aggregator/src/kernels/running-sum.ts';
import { accumulateWasm } from '../../aggregator/src/kernels/wasm-node.ts';
import { createStrategy, type RangeReader, type Strategy, type StrategyInput, type StrategyState } from '../../aggregator/src/strategies/index.ts';
import { rng } from '../shared/random.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
  },
});
const RUNS = Math.max(3, Number(args.runs) || 5);
const SEED = Number(args.seed) || 1;
/** Timed rounds of each streaming row per repetition. */
const STREAMING_REPEAT = 5;
const K = 100;
const P = 1_000_000;
/** Mirrors UPDATE_CHUNK_FLOATS in round-store.ts (not imported: that module needs the Worker's kernels). */
const UPDATE_CHUNK_FLOATS = 65_536;
const MiB = 1024 * 1024;
const VEC_MIB = (P * 4) / MiB;

const emit = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

// A forced GC, for clean baselines and the "live" memory samples.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// ---------------------------------------------------------------------------------------------
// Data: 100 seeded updates (each its own 4 MB buffer, as a decoded request body is), their
// example counts, and a base model. The robust reader serves 64K-float ranges of them as copies.

function makeData() {
  const next = rng(SEED);
  const updates: Float32Array[] = [];
  const weights: number[] = [];
  for (let k = 0; k < K; k++) {
    const u = new Float32Array(P);
    const scale = 0.01 * (0.5 + next()); // clients differ in update size, so norms differ
    for (let i = 0; i < P; i++) u[i] = scale * (2 * next() - 1);
    updates.push(u);
    weights.push(50 + Math.floor(950 * next()));
  }
  const base = new Float32Array(P);
  for (let i = 0; i < P; i++) base[i] = 0.1 * (2 * next() - 1);
  return { updates, weights, base };
}

const t0 = performance.now();
const { updates, weights, base } = makeData();
const genSeconds = (performance.now() - t0) / 1000;

function l2(u: Float32Array): number {
  let s = 0;
  for (let i = 0; i < u.length; i++) s += u[i]! * u[i]!;
  return Math.sqrt(s);
}
const norms = updates.map(l2);
/** FedBuff's row: how many versions old each update's base is (seeded, 0..4). */
const staleness = (() => {
  const next = rng(SEED ^ 0x5eed);
  return updates.map(() => Math.floor(5 * next()));
})();
/** Pristine copies, to undo in-place clipping (bench only: the DO clips each fresh request body). */
const pristine = updates.map((u) => u.slice());
function restoreUpdates(): void {
  for (let k = 0; k < K; k++) updates[k]!.set(pristine[k]!);
}

/** Called after every add / range read and after finalize/apply; a no-op in timed rounds. */
type Probe = () => void;
const noProbe: Probe = () => {};

/** Parameters [start, end) of every update: one fresh 256 KiB copy per update, as a SQLite row read gives. */
function chunkReader(probe: Probe): RangeReader {
  return (start, end) => {
    if (start % UPDATE_CHUNK_FLOATS !== 0 || end - start > UPDATE_CHUNK_FLOATS) throw new Error(`range [${start}, ${end}) is not one stored chunk`);
    const slices = updates.map((u) => u.slice(start, end));
    probe();
    return slices;
  };
}

// ---------------------------------------------------------------------------------------------
// One round's server work, per kind of strategy, following TaskAggregator.submit/publish

const acc = createRunningSum(P, { wasm: accumulateWasm }); // one per model, reset each round, as in the DO

interface Result {
  next: Float32Array;
  /** The robust aggregate Δ̂ (robust strategies only), for the spot checks. */
  delta?: Float32Array;
}

/** Stored server state per row (momentum, moments), carried from round to round. */
const storedState = new Map<string, StrategyState>();

function streamingRound(key: string, strategy: Strategy, probe: Probe): Result {
  acc.reset();
  let examples = 0;
  for (let k = 0; k < K; k++) {
    const delta = strategy.prepareUpdate?.(updates[k]!) ?? updates[k]!;
    acc.add(delta, weights[k]!);
    examples += weights[k]!;
    probe();
  }
  const stored = storedState.get(key);
  // readStrategyState materializes the stored vectors as new arrays
  const state: StrategyState | null = stored
    ? { step: stored.step, vectors: Object.fromEntries(Object.entries(stored.vectors).map(([n, v]) => [n, v.slice()])) }
    : null;
  // The strategy's own close, as publish() calls it.
  const out = strategy.aggregate(base, { kind: 'sum', sum: acc, numExamples: examples }, state);
  probe();
  if (out.state) storedState.set(key, out.state); // written to storage in the DO (not timed there either)
  return { next: out.next };
}

/**
 * FedBuff's publish of one buffer of K = 100, as TaskAggregator does it: each update is added with
 * the strategy's weight nᵢ(1 + sᵢ)^−a (sᵢ: a seeded staleness 0..4, as the simulations'
 * asynchronous driver sees), then the strategy's close: Σ nᵢ(1 + sᵢ)^−a Δᵢ / Σ nᵢ(1 + sᵢ)^−a,
 * rescaled to the example-count denominator Σ nᵢ (one extra pass) and applied with the server
 * learning rate. Aggregated onto a zero base, so the result is the step itself (η = 1) for the check.
 */
function fedBuffRound(strategy: Strategy, probe: Probe): Result {
  if (!strategy.asynchronous || !strategy.weightOf) throw new Error(`${strategy.name} is not asynchronous`);
  acc.reset();
  let examples = 0;
  for (let k = 0; k < K; k++) {
    acc.add(updates[k]!, strategy.weightOf(weights[k]!, staleness[k]!));
    examples += weights[k]!;
    probe();
  }
  const { next: delta } = strategy.aggregate(new Float32Array(P), { kind: 'sum', sum: acc, numExamples: examples }, null);
  probe();
  return { next: delta, delta };
}

/** An update-based close, onto a zero base: the result is the robust aggregate Δ̂ itself, for the spot checks. */
function robustRound(strategy: Strategy, probe: Probe): Result {
  if (strategy.keeps !== 'updates') throw new Error(`${strategy.name} does not keep updates`);
  const input = { kind: 'updates' as const, read: chunkReader(probe), numParams: P, count: K, rangeLength: UPDATE_CHUNK_FLOATS, numExamples: weights };
  const { next: delta } = strategy.aggregate(new Float32Array(P), input, null);
  probe();
  return { next: delta, delta };
}

/** Reads every range once and drops it: the reader's share of a robust round (Krum reads twice). */
function readsOnly(probe: Probe): Result {
  const read = chunkReader(probe);
  let touched = 0;
  for (let s = 0; s < P; s += UPDATE_CHUNK_FLOATS) touched += readOne(read, s);
  if (touched !== K * Math.ceil(P / UPDATE_CHUNK_FLOATS)) throw new Error('reader');
  return { next: base };
}

/** Its own frame, so the dropped slices are not kept alive by a stale interpreter register. */
function readOne(read: RangeReader, s: number): number {
  return read(s, Math.min(P, s + UPDATE_CHUNK_FLOATS)).length;
}

// ---------------------------------------------------------------------------------------------
// The rows

interface Case {
  name: string;
  kind: 'streaming' | 'robust' | 'component';
  note: string;
  run(probe: Probe): Result;
  /** Untimed clean-up after each round. */
  after?: () => void;
}

const fedOpt = { serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
const fedBuff = createStrategy({ name: 'fedbuff', bufferSize: K, stalenessExponent: 0.5, maxStaleness: 10, serverLearningRate: 1 });
/** The "all clipped" row clips the updates in place (as the DO does); they are restored after it, untimed. */
const clipAll = createStrategy({ name: 'fedavg', clipNorm: 0.5 * Math.min(...norms) });

function streaming(name: string, config: StrategyInput, note: string): Case {
  const strategy = createStrategy(config);
  return { name, kind: 'streaming', note, run: (probe) => streamingRound(name, strategy, probe) };
}

function robust(name: string, config: StrategyInput, note: string): Case {
  const strategy = createStrategy(config);
  return { name, kind: 'robust', note, run: (probe) => robustRound(strategy, probe) };
}

const cases: Case[] = [
  streaming('FedAvg (baseline)', { name: 'fedavg' }, 'reset + 100 x wasm add + finalizeInto(base, next)'),
  streaming('FedProx (mu = 0.01)', { name: 'fedprox', mu: 0.01 }, "server path identical to FedAvg (mu only changes the clients' local objective)"),
  streaming('FedAvgM', { name: 'fedavgm', serverLearningRate: 1, momentum: 0.9 }, 'sum + finalize to the mean + state copy + apply'),
  streaming('FedAdam', { name: 'fedadam', ...fedOpt }, 'sum + finalize to the mean + state copy + apply'),
  streaming('FedYogi', { name: 'fedyogi', ...fedOpt }, 'sum + finalize to the mean + state copy + apply'),
  streaming('FedAdagrad', { name: 'fedadagrad', ...fedOpt }, 'sum + finalize to the mean + state copy + apply'),
  {
    name: 'FedAvg + clipNorm, all clipped',
    kind: 'streaming',
    note: 'clipToNorm (norm pass + scale pass, in place, as prepareUpdate does on the decoded body) on each update + sum; bound = half the smallest norm, so all 100 are clipped',
    run: (probe) => streamingRound('clip-all', clipAll, probe),
    after: restoreUpdates,
  },
  {
    name: 'FedBuff (K = 100, a = 0.5)',
    kind: 'streaming',
    note: 'one full buffer: 100 x wasm add weighted n(1+s)^-a (s = 0..4, seeded) + finalize to the mean + rescale to the example-count denominator + apply',
    run: (probe) => fedBuffRound(fedBuff, probe),
  },
  streaming('FedAvg + clipNorm, none clipped', { name: 'fedavg', clipNorm: Number.MAX_VALUE }, 'clipToNorm norm pass only (no update exceeds the bound) + sum'),
  robust('median', { name: 'median' }, 'coordinate-wise median: quickselect over k = 100 values per coordinate'),
  robust('trimmed mean (beta = 0.1)', { name: 'trimmedmean', beta: 0.1 }, 'two quickselects + exact sum of the 80 kept values per coordinate'),
  robust(
    'Krum (f = 10, m = 1)',
    { name: 'krum', f: 10, m: 1 },
    'k(k-1)/2 = 4,950 pairwise distances over all n (pass 1), then copy the chosen update (pass 2)',
  ),
  robust('Multi-Krum (f = 10, m = 80)', { name: 'krum', f: 10, m: 80 }, 'same distances (pass 1), then average of the 80 chosen (pass 2)'),
  {
    name: 'chunk reads alone (1 pass)',
    kind: 'component',
    note: "the reader's share: 16 ranges x 100 fresh 256 KiB copies (400 MB); median/trimmed mean read once, Krum twice",
    run: readsOnly,
  },
];

// ---------------------------------------------------------------------------------------------
// Memory: peak extra arrayBuffers / rss over a post-GC baseline, in an untimed round

interface Mem {
  liveMiB: number;
  lazyMiB: number;
  rssMiB: number;
}

/**
 * A full GC whose freed ArrayBuffers are already subtracted from `arrayBuffers` when it returns.
 * V8 sweeps dead ArrayBuffers on a background thread and lowers the count only when that
 * finishes, so right after a plain gc() the previous round's garbage can still be counted; the
 * flag makes that sweep happen on the main thread (a GC-only flag, read at each GC).
 */
function settle(): void {
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
  gc();
  setFlagsFromString('--concurrent-array-buffer-sweeping');
}

function measureMemory(c: Case): { mem: Mem; result: Result } {
  // lazy: sample as the round runs; garbage from earlier ranges counts until V8 collects it
  settle();
  let b = process.memoryUsage();
  let peakAb = 0;
  let peakRss = 0;
  const lazy: Probe = () => {
    const m = process.memoryUsage();
    peakAb = Math.max(peakAb, m.arrayBuffers - b.arrayBuffers);
    peakRss = Math.max(peakRss, m.rss - b.rss);
  };
  const result = c.run(lazy);
  lazy();
  c.after?.();
  const lazyMiB = peakAb / MiB;
  const rssMiB = peakRss / MiB;
  // live: a forced GC before every sample, so only what the round still references counts
  // (main-thread ArrayBuffer sweeping for the whole pass, as in settle())
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
  gc();
  b = process.memoryUsage();
  let peakLive = 0;
  const live: Probe = () => {
    gc();
    peakLive = Math.max(peakLive, process.memoryUsage().arrayBuffers - b.arrayBuffers);
  };
  c.run(live);
  live();
  setFlagsFromString('--concurrent-array-buffer-sweeping');
  c.after?.();
  return { mem: { liveMiB: peakLive / MiB, lazyMiB, rssMiB }, result };
}

// ---------------------------------------------------------------------------------------------
// Spot checks on the first (memory) round's outputs, against the data as it was then

const SAMPLE = Array.from({ length: 64 }, (_, i) => Math.floor(((i + 0.5) / 64) * P));

function column(j: number): number[] {
  return updates.map((u) => u[j]!).sort((a, b) => a - b);
}

function check(c: Case, r: Result, fedavgNext: Float32Array | null): string {
  if (c.name.startsWith('FedProx')) {
    for (let i = 0; i < P; i++) if (!Object.is(r.next[i], fedavgNext![i])) throw new Error(`FedProx differs from FedAvg at ${i}`);
    return 'bit-identical to FedAvg';
  }
  const d = r.delta;
  if (!d) return '';
  if (c.name.startsWith('FedBuff')) {
    const w = staleness.map((s, k) => weights[k]! * (1 + s) ** -0.5);
    const n = weights.reduce((a, b) => a + b, 0);
    for (const j of SAMPLE) {
      const want = updates.reduce((a, u, k) => a + w[k]! * u[j]!, 0) / n;
      if (Math.abs(d[j]! - want) > 1e-6) throw new Error(`FedBuff wrong at ${j}: ${d[j]} vs ${want}`);
    }
    return `FedBuff's staleness-weighted mean within 1e-6 at ${SAMPLE.length} sampled coordinates (mean staleness ${round(staleness.reduce((a, b) => a + b, 0) / K, 2)})`;
  }
  if (c.name === 'median') {
    for (const j of SAMPLE) {
      const s = column(j);
      if (d[j] !== Math.fround((s[K / 2 - 1]! + s[K / 2]!) / 2)) throw new Error(`median wrong at ${j}`);
    }
    return `median exact at ${SAMPLE.length} sampled coordinates`;
  }
  if (c.name.startsWith('trimmed')) {
    for (const j of SAMPLE) {
      const s = column(j).slice(10, K - 10);
      const want = s.reduce((a, b) => a + b, 0) / s.length;
      if (Math.abs(d[j]! - want) > 1e-9) throw new Error(`trimmed mean wrong at ${j}: ${d[j]} vs ${want}`);
    }
    return `trimmed mean within 1e-9 at ${SAMPLE.length} sampled coordinates`;
  }
  if (c.name.startsWith('Krum')) {
    const i = updates.findIndex((u) => SAMPLE.every((j) => u[j] === d[j]));
    if (i < 0) throw new Error('Krum output is not one of the updates');
    return `Krum chose update ${i} (norm ${round(norms[i]!, 3)}; min ${round(Math.min(...norms), 3)}, max ${round(Math.max(...norms), 3)})`;
  }
  if (c.name.startsWith('Multi-Krum')) {
    for (const j of SAMPLE) {
      const s = column(j);
      if (!(d[j]! >= s[0]! && d[j]! <= s[K - 1]!)) throw new Error(`Multi-Krum output out of range at ${j}`);
    }
    return "Multi-Krum output within the updates' range at sampled coordinates";
  }
  return '';
}

// ---------------------------------------------------------------------------------------------

function main(): void {
  emit({
    bench: 'fedge strategies',
    node: process.version,
    updates: K,
    params: P,
    chunk_floats: UPDATE_CHUNK_FLOATS,
    runs: RUNS,
    streaming_runs: RUNS * STREAMING_REPEAT,
    seed: SEED,
    data_MiB: round((K * P * 4) / MiB, 1),
    generate_s: round(genSeconds, 2),
    running_sum_MiB: round((P * 8 + 4 * 16384 * 4) / MiB, 2),
  });

  // Untimed memory round per strategy (also the JIT warm-up), with spot checks.
  const mem = new Map<string, Mem>();
  const checks = new Map<string, string>();
  let fedavgNext: Float32Array | null = null;
  for (const c of cases) {
    const { mem: m, result } = measureMemory(c);
    mem.set(c.name, m);
    if (c.name.startsWith('FedAvg (baseline)')) fedavgNext = result.next;
    checks.set(c.name, check(c, result, fedavgNext));
  }
  fedavgNext = null;

  // Timed rounds, round-robin: every repetition times each robust row once and each streaming
  // row STREAMING_REPEAT times (they take ~1/30-1/100 as long, so the baseline gets more samples).
  const times = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const timeOnce = (c: Case) => {
    gc();
    const s = performance.now();
    c.run(noProbe);
    times.get(c.name)!.push((performance.now() - s) / 1000);
    c.after?.();
  };
  for (let r = 0; r < RUNS; r++) {
    for (let i = 0; i < STREAMING_REPEAT; i++) for (const c of cases) if (c.kind === 'streaming') timeOnce(c);
    for (const c of cases) if (c.kind !== 'streaming') timeOnce(c);
  }

  const baseTimes = times.get(cases[0]!.name)!;
  const baseMedian = median(baseTimes);
  const boundMiB = (K * UPDATE_CHUNK_FLOATS * 4) / MiB;
  const rows = cases.map((c) => {
    const t = times.get(c.name)!;
    const med = median(t);
    const m = mem.get(c.name)!;
    const row = {
      name: c.name,
      kind: c.kind,
      samples: t.length,
      median_s: round(med, 4),
      min_s: round(Math.min(...t), 4),
      max_s: round(Math.max(...t), 4),
      ratio_to_fedavg: round(med / baseMedian, 2),
      peak_live_MiB: round(m.liveMiB, 1),
      peak_lazy_gc_MiB: round(m.lazyMiB, 1),
      peak_rss_delta_MiB: round(m.rssMiB, 1),
      ...(c.kind === 'robust' ? { bound_MiB: round(boundMiB + 3 * VEC_MIB, 1) } : {}),
      note: c.note,
      ...(checks.get(c.name) ? { check: checks.get(c.name) } : {}),
    };
    emit(row);
    return row;
  });

  const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
  console.log('');
  console.log(
    `${K} updates x ${P.toLocaleString('en')} float32 (${round((K * P * 4) / 1e6, 0)} MB), median of ${RUNS} round-robin runs (streaming rows: ${RUNS * STREAMING_REPEAT}); memory: peak extra MiB over a post-GC baseline`,
  );
  console.log(`${pad('strategy', 34)} ${lpad('median s', 9)} ${lpad('x FedAvg', 9)} ${lpad('live MiB', 9)} ${lpad('lazy MiB', 9)} ${lpad('rss MiB', 8)}`);
  console.log('-'.repeat(83));
  for (const r of rows) {
    console.log(
      `${pad(r.name, 34)} ${lpad(r.median_s.toFixed(3), 9)} ${lpad(r.ratio_to_fedavg.toFixed(2), 9)} ${lpad(r.peak_live_MiB.toFixed(1), 9)} ${lpad(r.peak_lazy_gc_MiB.toFixed(1), 9)} ${lpad(r.peak_rss_delta_MiB.toFixed(1), 8)}`,
    );
  }
  console.log('-'.repeat(83));
  console.log(
    `live: forced GC before each sample (what the round references); lazy: no forced GC (garbage not yet collected counts); rss: process RSS growth.`,
  );
  console.log(
    `Not counted: the ${round((P * 8 + 4 * 16384 * 4) / MiB, 1)} MiB running sum (one per model, kept across rounds), the base model, and the stored updates`,
  );
  console.log(
    `(${round((K * P * 4) / MiB, 0)} MiB here; SQLite storage in the Durable Object). Robust bound: k x 256 KiB = ${round(boundMiB, 1)} MiB of range copies + 3 model vectors (${round(3 * VEC_MIB, 1)} MiB) = ${round(boundMiB + 3 * VEC_MIB, 1)} MiB.`,
  );
  acc.dispose();
}

main();
