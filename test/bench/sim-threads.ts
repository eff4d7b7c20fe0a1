/**
 * `npm run bench:sim-threads`: the same simulation with a round's clients trained in this thread,
 * then on worker threads (one per core), against one real local aggregator, alternating A B A B
 * so drift hits both; prints the wall time per round of each, and the speed-up, measured in one run.
 *
 *   npm run bench:sim-threads                       # 100 clients, all train, 2nn, E = 1, 3 rounds, 2 pairs
 *   npm run bench:sim-threads -- --clients 50 --rounds 2 --pairs 3 --model mlp --threads 2
 *
 * The aggregator (workerd) runs on the same cores: its share of a round is in the figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import type { ModelName } from '../sim/models.ts';
import { type RoundReport, simulate } from '../sim/runner.ts';

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    pairs: { type: 'string', default: '2' },
    model: { type: 'string', default: '2nn' },
    epochs: { type: 'string', default: '1' },
    threads: { type: 'string', default: String(availableParallelism()) },
  },
});
const clients = Number(a.clients);
const rounds = Number(a.rounds);
const threads = Number(a.threads);

const stateDir = mkdtempSync(join(tmpdir(), 'fedge-bench-threads-'));
const server = await startLocalServer({ port: await findFreePort(), stateDir, adminToken: 'bench-threads', onOutput: () => {} });

async function once(t: number): Promise<{ perRound: number; trainPerRound: number; accuracy: number }> {
  const reports: RoundReport[] = [];
  await simulate({
    baseUrl: server.url,
    adminToken: server.adminToken,
    clients,
    fraction: 1,
    rounds,
    partition: 'iid',
    model: a.model as ModelName,
    epochs: Number(a.epochs),
    batchSize: 10,
    learningRate: 0.1,
    seed: 3,
    threads: t,
    onRound: (r) => reports.push(r),
  });
  const mean = (f: (r: RoundReport) => number) => reports.reduce((s, r) => s + f(r), 0) / reports.length;
  return { perRound: mean((r) => r.seconds), trainPerRound: mean((r) => r.trainSeconds), accuracy: reports.at(-1)!.accuracy };
}

try {
  console.log(`${clients} clients per round (all train), ${a.model}, E=${a.epochs}, B=10, ${rounds} rounds per run; ${availableParallelism()} cores`);
  const one: number[] = [];
  const many: number[] = [];
  for (let p = 0; p < Number(a.pairs); p++) {
    for (const t of [0, threads]) {
      const r = await once(t);
      (t === 0 ? one : many).push(r.perRound);
      console.log(
        `  ${t === 0 ? 'one thread     ' : `${t} worker threads`}: ${r.perRound.toFixed(2)} s/round (training ${r.trainPerRound.toFixed(2)} s of client time), accuracy ${r.accuracy.toFixed(4)}`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  console.log(
    `\nmedian s/round: one thread ${median(one).toFixed(2)}, ${threads} worker threads ${median(many).toFixed(2)}; speed-up ${(median(one) / median(many)).toFixed(2)}×`,
  );
} finally {
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
