/**
 * Aggregation kernel benchmark: 100 updates x 1,000,000 float32 parameters folded into one
 * running sum, then finalized (FedAvg), against this machine's memory read bandwidth R and
 * Flower's numpy `aggregate`, all measured in the same run.
 *
 *   npm run bench:kernels            (or: npx node bench/kernels.ts)
 *   npx node bench/kernels.ts --no-ref   skip the C and numpy reference programs
 *   npx node bench/kernels.ts --runs 9   timed repetitions per line (median reported; default 7)
 *
 * Prints one JSON object per measurement, then a table. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeTensors, encodeTensors } from '#protocol/safetensors.ts';
import { createRunningSum, firstNonFinite, type RunningSum } from '../../aggregator/src/kernels/running-sum.ts';
import { accumulateWasm } from '../../aggregator/src/kernels/wasm-node.ts';

const N = 100;
const P = 1_000_000;
const BYTES = N * P * 4;
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1]) > 0 && args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 7;
const WITH_REF = !args.includes('--no-ref');

const root = fileURLToPath(new URL('../..', import.meta.url));
const shared = join(root, '..', 'shared', 'bench');

interface Row {
  name: string;
  gbps: number;
  note?: string;
  /** Counted against the targets (the accumulate lines). */
  kernel?: boolean;
}
const rows: Row[] = [];

function emit(obj: Record<string, unknown>): void {
  console.log(JSON.stringify(obj));
}

function record(name: string, seconds: number[], bytes: number, extra: Record<string, unknown> = {}, kernel = false): Row {
  const t = [...seconds].sort((a, b) => a - b);
  const median = t[t.length >> 1]!;
  const gbps = bytes / median / 1e9;
  emit({ name, median_s: round(median, 5), min_s: round(t[0]!, 5), max_s: round(t[t.length - 1]!, 5), GBps: round(gbps, 2), ...extra });
  const row: Row = { name, gbps, kernel };
  rows.push(row);
  return row;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** One untimed warm-up (JIT tier-up, page faults), then RUNS timed runs. */
function time(fn: () => void, runs = RUNS): number[] {
  fn();
  const out: number[] = [];
  for (let r = 0; r < runs; r++) {
    const s = performance.now();
    fn();
    out.push((performance.now() - s) / 1000);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// References: R (C read bandwidth) and numpy Flower aggregate

let R = Number.NaN;
let rSource = '';
let numpyAggregate = Number.NaN;

function runC(): void {
  const src = join(shared, 'membw.c');
  if (!existsSync(src)) return void emit({ name: 'R', skipped: `${src} not found` });
  const dir = mkdtempSync(join(tmpdir(), 'fedge-membw-'));
  try {
    const exe = join(dir, 'membw');
    try {
      execFileSync('gcc', ['-O3', '-march=native', '-ffast-math', '-o', exe, src], { stdio: 'pipe' });
    } catch (e) {
      return void emit({ name: 'R', skipped: `gcc failed or missing: ${(e as Error).message.split('\n')[0]}` });
    }
    const out = execFileSync(exe, { encoding: 'utf8', maxBuffer: 1 << 20 });
    for (const line of out.split('\n')) {
      const m = /^(C .*?):\s+([\d.]+) s\s+([\d.]+) GB\/s/.exec(line);
      if (!m) continue;
      const gbps = Number(m[3]);
      emit({ name: m[1], median_s: Number(m[2]), GBps: gbps, source: 'shared/bench/membw.c' });
      if (m[1]!.startsWith('C read-sum 2GiB')) {
        R = gbps;
        rSource = 'membw.c read-sum over 2 GiB (gcc -O3 -march=native -ffast-math)';
      } else if (m[1]!.startsWith('C streaming FMA f64') || m[1]!.startsWith('C 4-per-pass')) {
        rows.push({ name: `${m[1]} (reference)`, gbps });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runNumpy(): void {
  const py = '/usr/bin/python3';
  const src = join(shared, 'numpy_fedavg.py');
  if (!existsSync(src) || !existsSync(py)) return void emit({ name: 'numpy', skipped: `${!existsSync(src) ? src : py} not found` });
  try {
    execFileSync(py, ['-c', 'import numpy'], { stdio: 'pipe' });
  } catch {
    return void emit({ name: 'numpy', skipped: 'numpy not importable by /usr/bin/python3 (apt-get install -y python3-numpy)' });
  }
  const out = execFileSync(py, [src], { encoding: 'utf8', maxBuffer: 1 << 20 });
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as { name: string; median_s: number; GBps: number };
    emit({ ...r, source: 'shared/bench/numpy_fedavg.py' });
    if (r.name.startsWith('numpy flower aggregate (reduce')) {
      numpyAggregate = r.GBps;
      rows.push({ name: 'numpy Flower aggregate', gbps: r.GBps });
    } else if (r.name.startsWith('numpy flower aggregate_inplace')) {
      rows.push({ name: 'numpy Flower aggregate_inplace', gbps: r.GBps });
    }
  }
}

/** Fallback R without a C compiler: the wasm finite-check kernel reading 1 GiB in place. */
function wasmReadBandwidth(): void {
  const rs = createRunningSum(0, { wasm: accumulateWasm });
  const area = rs.staging(1 << 30);
  const data = new Float32Array(area.buffer, area.byteOffset, area.byteLength / 4);
  for (let i = 0; i < data.length; i += 1024) data[i] = i;
  const row = record(
    'wasm SIMD read (first_non_finite over 1 GiB, in place)',
    time(() => void firstNonFinite(data), 5),
    area.byteLength,
  );
  R = row.gbps;
  rSource = 'wasm SIMD read loop over 1 GiB (no C compiler; lower than a native read)';
  rs.dispose();
}

// ---------------------------------------------------------------------------------------------
// Data: each update is its own safetensors message, decoded zero-copy, as in the aggregator

function makeUpdates(): { messages: Uint8Array[]; updates: Float32Array[]; weights: number[] } {
  const messages: Uint8Array[] = [];
  const updates: Float32Array[] = [];
  const weights: number[] = [];
  const tmp = new Float32Array(P);
  for (let k = 0; k < N; k++) {
    // same values as membw.c: ((i*2654435761 + k) % 1000) / 1000 (exact in float64 for i < 1e6)
    for (let i = 0; i < P; i++) tmp[i] = ((i * 2654435761 + k) % 1000) / 1000;
    const msg = encodeTensors([{ name: 'params', shape: [P], data: tmp }], { round: '1' });
    messages.push(msg);
    updates.push(decodeTensors(msg).tensors[0]!.data);
    weights.push(100 + k);
  }
  return { messages, updates, weights };
}

function groups<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

function benchAccumulate(label: string, rs: RunningSum, updates: Float32Array[], weights: number[], mode: 'add' | 'batch4' | 'batchAll', note: string): void {
  const base = new Float32Array(P);
  const out = new Float32Array(P);
  const ug = groups(updates, 4);
  const wg = groups(weights, 4);
  const fn =
    mode === 'add'
      ? () => {
          rs.reset();
          for (let k = 0; k < N; k++) rs.add(updates[k]!, weights[k]!);
          rs.finalizeInto(base, out);
        }
      : mode === 'batch4'
        ? () => {
            rs.reset();
            for (let g = 0; g < ug.length; g++) rs.addBatch(ug[g]!, wg[g]!);
            rs.finalizeInto(base, out);
          }
        : () => {
            rs.reset();
            rs.addBatch(updates, weights);
            rs.finalizeInto(base, out);
          };
  const t = time(fn);
  const med = [...t].sort((a, b) => a - b)[t.length >> 1]!;
  record(label, t, BYTES, { ms_per_4MB_update: round((med / N) * 1000, 3), implementation: rs.implementation, note }, true);
}

function main(): void {
  emit({ bench: 'fedge kernels', node: process.version, updates: N, params: P, update_bytes: BYTES, runs: RUNS });
  if (WITH_REF) {
    runC();
    runNumpy();
  }
  if (!Number.isFinite(R)) wasmReadBandwidth();

  const { messages, updates, weights } = makeUpdates();

  // Reference result for correctness of every timed path (bit-identical by design).
  const check = createRunningSum(P);
  check.addBatch(updates, weights);
  const expected = check.sum().slice();
  const same = (rs: RunningSum) => {
    const s = rs.sum();
    for (let i = 0; i < P; i++) if (!Object.is(s[i], expected[i])) throw new Error(`${rs.implementation} differs at ${i}`);
  };

  const js = createRunningSum(P);
  benchAccumulate('js add (plain Float32Array loop)', js, updates, weights, 'add', '100 x add + finalize');
  same(js);
  benchAccumulate('js addBatch x4', js, updates, weights, 'batch4', '25 x addBatch(4) + finalize');
  same(js);

  const wasm = createRunningSum(P, { wasm: accumulateWasm });
  benchAccumulate('wasm add', wasm, updates, weights, 'add', '100 x add + finalize; each update copied into wasm memory');
  same(wasm);
  benchAccumulate('wasm addBatch x4', wasm, updates, weights, 'batch4', '25 x addBatch(4) + finalize; copies included');
  same(wasm);
  benchAccumulate('wasm addBatch x100', wasm, updates, weights, 'batchAll', '1 x addBatch(100) + finalize; copies included');
  same(wasm);

  // Staged: every message already in the running sum's staging area (as if the request body had
  // been read into it), so the kernels read the updates in place. 400 MB of staging, bench only.
  const total = messages.reduce((t, m) => t + m.length, 0);
  const area = wasm.staging(total);
  const staged: Float32Array[] = [];
  let at = 0;
  for (const m of messages) {
    area.set(m, at);
    staged.push(decodeTensors(area.subarray(at, at + m.length)).tensors[0]!.data);
    at += m.length;
  }
  benchAccumulate('wasm add, staged', wasm, staged, weights, 'add', 'updates read in place from staging() (no copy); body-read cost not included');
  same(wasm);
  benchAccumulate('wasm addBatch x4, staged', wasm, staged, weights, 'batch4', 'updates read in place from staging() (no copy)');
  same(wasm);

  // Finite check over all 100 updates.
  record(
    'finite check, js',
    time(() => {
      for (const u of updates) if (firstNonFinite(u) !== -1) throw new Error('finite');
    }),
    BYTES,
  );
  record(
    'finite check, wasm (copy)',
    time(() => {
      for (const u of updates) if (firstNonFinite(u, accumulateWasm) !== -1) throw new Error('finite');
    }),
    BYTES,
  );
  record(
    'finite check, wasm staged',
    time(() => {
      for (const u of staged) if (firstNonFinite(u) !== -1) throw new Error('finite');
    }),
    BYTES,
  );

  // decodeTensors on one 4 MB message: zero-copy (views over the received bytes).
  const msg = messages[0]!;
  const decoded = decodeTensors(msg);
  const zeroCopy = decoded.tensors[0]!.data.buffer === msg.buffer;
  const reps = 1000;
  const td = time(() => {
    for (let r = 0; r < reps; r++) decodeTensors(msg);
  }, 5).map((s) => s / reps);
  const tc = time(() => {
    for (let r = 0; r < 20; r++) msg.slice();
  }, 5).map((s) => s / 20);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  emit({
    name: 'decodeTensors 4 MB message',
    bytes: msg.length,
    zero_copy: zeroCopy,
    median_us: round(med(td) * 1e6, 2),
    copy_of_same_bytes_us: round(med(tc) * 1e6, 1),
    copy_over_decode: round(med(tc) / med(td), 1),
  });
  wasm.dispose();

  // Table
  const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
  console.log('');
  console.log(
    `R = ${Number.isFinite(R) ? R.toFixed(2) : '?'} GB/s (${rSource || 'not measured'}); numpy Flower aggregate = ${Number.isFinite(numpyAggregate) ? `${numpyAggregate.toFixed(2)} GB/s` : 'not measured'}`,
  );
  console.log(`${pad('line (100 x 1M float32 = 400 MB of updates)', 46)} ${lpad('GB/s', 7)} ${lpad('x R', 6)} ${lpad('x numpy', 8)}`);
  console.log('-'.repeat(70));
  const ordered = [
    ...rows.filter((r) => !r.kernel && !r.name.startsWith('finite')),
    ...rows.filter((r) => r.kernel),
    ...rows.filter((r) => r.name.startsWith('finite')),
  ];
  for (const r of ordered) {
    const xr = Number.isFinite(R) ? (r.gbps / R).toFixed(2) : '-';
    const xn = Number.isFinite(numpyAggregate) ? (r.gbps / numpyAggregate).toFixed(2) : '-';
    console.log(`${pad(r.name, 46)} ${lpad(r.gbps.toFixed(2), 7)} ${lpad(xr, 6)} ${lpad(xn, 8)}`);
  }
  console.log('-'.repeat(70));
  console.log(`decodeTensors 4 MB: ${(med(td) * 1e6).toFixed(1)} us, zero-copy=${zeroCopy} (copying the same bytes: ${(med(tc) * 1e6).toFixed(0)} us)`);
  console.log('targets: accumulate >= 0.5 R and >= 2x numpy Flower aggregate');
}

main();
