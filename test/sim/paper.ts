/**
 * @module Driver for the "ours vs the paper" runs (test/sim/README.md): several `simulate()`
 * configurations one after the other against ONE local aggregator, whose output (wrangler and
 * workerd logs) is kept in a file, so a server-side failure in a long run can be diagnosed. Each
 * configuration is exactly what `npm run simulate -- <same options>` runs.
 *
 *   npx node test/sim/paper.ts [--log sim-out/paper-server.log] [--out sim-out/paper.jsonl] \
 *     --run "iid E1 Binf lr0.5 R300 s1" --run "pathological E5 B10 lr0.1 R300 s2" ...
 *
 * A run spec is space-separated tokens: a partition (iid | dirichlet | pathological), E<epochs>,
 * B<batch or inf>, lr<rate>, R<round cap>, s<seed>, and optionally t<target> (default 0.937),
 * K<clients> (100), C<fraction> (0.1), m<model> (2nn). Prints and appends one JSON line per run:
 * rounds to the target (null if not reached), wall time, best accuracy, the accuracy curve.
 * A run that fails is reported (its error and the rounds it completed) and the next one starts.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import type { ModelName } from './models.ts';
import { type PartitionName, type RoundReport, type SimulationOptions, simulate } from './runner.ts';

const { values: a } = parseArgs({
  options: {
    run: { type: 'string', multiple: true, default: [] },
    log: { type: 'string', default: 'sim-out/paper-server.log' },
    out: { type: 'string', default: 'sim-out/paper.jsonl' },
  },
});

type Spec = Omit<SimulationOptions, 'baseUrl' | 'adminToken'> & { label: string };

function parseSpec(text: string): Spec {
  const s: Spec = {
    label: text,
    partition: 'iid',
    clients: 100,
    fraction: 0.1,
    rounds: 300,
    model: '2nn',
    epochs: 1,
    batchSize: 10,
    learningRate: 0.1,
    seed: 1,
    target: 0.937,
  };
  for (const tok of text.trim().split(/\s+/)) {
    if (['iid', 'dirichlet', 'pathological'].includes(tok)) s.partition = tok as PartitionName;
    else if (/^E\d+$/.test(tok)) s.epochs = Number(tok.slice(1));
    else if (/^B(\d+|inf)$/.test(tok)) s.batchSize = tok === 'Binf' ? Infinity : Number(tok.slice(1));
    else if (/^lr[\d.]+$/.test(tok)) s.learningRate = Number(tok.slice(2));
    else if (/^R\d+$/.test(tok)) s.rounds = Number(tok.slice(1));
    else if (/^s\d+$/.test(tok)) s.seed = Number(tok.slice(1));
    else if (/^t[\d.]+$/.test(tok)) s.target = Number(tok.slice(1));
    else if (/^K\d+$/.test(tok)) s.clients = Number(tok.slice(1));
    else if (/^C[\d.]+$/.test(tok)) s.fraction = Number(tok.slice(1));
    else if (/^m(mlp|2nn|cnn)$/.test(tok)) s.model = tok.slice(1) as ModelName;
    else throw new Error(`run spec "${text}": unknown token "${tok}"`);
  }
  return s;
}

const specs = a.run.map(parseSpec);
if (specs.length === 0) {
  console.error('paper: give at least one --run "<partition> E<e> B<b|inf> lr<lr> R<cap> s<seed>"');
  process.exit(2);
}
const logPath = resolve(a.log);
const outPath = resolve(a.out);
mkdirSync(dirname(logPath), { recursive: true });
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(logPath, '');
const stateDir = mkdtempSync(join(tmpdir(), 'fedge-paper-'));
const server = await startLocalServer({
  port: await findFreePort(),
  stateDir,
  adminToken: `paper-${process.pid}`,
  onOutput: (chunk: string | Buffer) => appendFileSync(logPath, chunk),
});
console.error(`aggregator ${server.url} (log: ${logPath})`);
try {
  for (const spec of specs) {
    const { label, ...options } = spec;
    const reports: RoundReport[] = [];
    const t0 = performance.now();
    let result: { roundsToTarget: number | null; taskId: string } | null = null;
    let error: string | null = null;
    appendFileSync(logPath, `\n===== paper run: ${label} =====\n`);
    try {
      result = await simulate({
        ...options,
        baseUrl: server.url,
        adminToken: server.adminToken,
        onRound: (r) => {
          reports.push(r);
          if (r.round % 10 === 0) console.error(`  ${label}: round ${r.round} acc ${r.accuracy.toFixed(4)} (${r.seconds.toFixed(1)} s/round)`);
        },
      });
    } catch (e) {
      error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      appendFileSync(logPath, `\n===== run failed: ${error} =====\n`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const line = {
      label,
      ...options,
      batchSize: Number.isFinite(options.batchSize) ? options.batchSize : 'inf',
      taskId: result?.taskId ?? null,
      roundsToTarget: result?.roundsToTarget ?? null,
      roundsRun: reports.length,
      error,
      wallSeconds: Math.round(seconds * 10) / 10,
      secondsPerRound: reports.length ? Math.round((reports.reduce((s, r) => s + r.seconds, 0) / reports.length) * 100) / 100 : null,
      trainSecondsPerRound: reports.length ? Math.round((reports.reduce((s, r) => s + r.trainSeconds, 0) / reports.length) * 100) / 100 : null,
      bestAccuracy: reports.length ? Math.max(...reports.map((r) => r.accuracy)) : null,
      finalAccuracy: reports.at(-1)?.accuracy ?? null,
      curve: reports.map((r) => Math.round(r.accuracy * 10_000) / 10_000),
    };
    console.log(JSON.stringify(line));
    appendFileSync(outPath, `${JSON.stringify(line)}\n`);
  }
} finally {
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
