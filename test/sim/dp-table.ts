/**
 * @module The accuracy-vs-ε table of DP-FedAvg on MNIST (issue 13 §4): each row is one
 * `npm run simulate` run (the exact command is printed with it) through the real platform,
 * non-private FedAvg beside DP-FedAvg at several noise multipliers, fixed and adaptive clipping,
 * at 100 clients (80 examples each) and at 1,000 clients (8 each), C = q = 0.1.
 *
 *   npm run sim:dp-table -- [--rounds 30] [--only K100|K1000] [--out sim-out/dp-table.md]
 *
 * Uses the aggregator at FEDGE_URL (else each run starts its own). Writes the table as Markdown.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: { rounds: { type: 'string', default: '30' }, only: { type: 'string' }, out: { type: 'string', default: 'sim-out/dp-table.md' } },
});
const rounds = a.rounds;

interface Row {
  population: 'K100' | 'K1000';
  label: string;
  args: string[];
}

const populations = {
  // 100 clients × 80 examples: E = 1, B = 10 (8 local steps); 10 expected per round.
  K100: { base: ['--clients', '100', '--fraction', '0.1', '--epochs', '1', '--batch', '10'], deadline: '10' },
  // 1,000 clients × 8 examples: E = 5, B = 8 (5 local steps); 100 expected per round.
  K1000: { base: ['--clients', '1000', '--fraction', '0.1', '--epochs', '5', '--batch', '8'], deadline: '30' },
} as const;

const rows: Row[] = [];
for (const population of ['K100', 'K1000'] as const) {
  if (a.only && a.only !== population) continue;
  const p = populations[population];
  const common = ['--model', 'mlp', '--partition', 'iid', '--lr', '0.1', '--rounds', rounds, '--seed', '5', ...p.base];
  const dp = (z: string, extra: string[] = []) => [...common, '--dp', 'central', '--dp-z', z, '--dp-clip', '1', '--deadline', p.deadline, ...extra];
  rows.push({ population, label: 'FedAvg (no DP)', args: common });
  rows.push({ population, label: 'DP-FedAvg z = 0.7, S = 1', args: dp('0.7') });
  rows.push({ population, label: 'DP-FedAvg z = 1.0, S = 1', args: dp('1') });
  // σ_b must exceed z / 2 (Andrew et al. §3.1): the default clientsPerRound / 20 is 0.5 at 10 per round, so K100 sets 1.
  const countNoise = population === 'K100' ? ['--dp-count-noise', '1'] : [];
  rows.push({ population, label: 'DP-FedAvg z = 1.0, adaptive S (from 1)', args: dp('1', ['--dp-adaptive', ...countNoise]) });
}

const out = resolve(a.out);
mkdirSync(dirname(out), { recursive: true });
const lines = [
  `| clients | run | final accuracy | best accuracy | ε (δ = 1e-5) | s / round | command |`,
  `| ------- | --- | -------------- | ------------- | ------------ | --------- | ------- |`,
];
for (const row of rows) {
  const name = `dp-table-${row.population}-${row.label.replace(/[^A-Za-z0-9.]+/g, '-')}`;
  const args = [...row.args, '--name', name, '--out', 'sim-out'];
  const command = `npm run simulate -- ${args.join(' ')}`;
  console.error(`\n${row.population} ${row.label}\n  ${command}`);
  const t0 = performance.now();
  execFileSync(process.execPath, [join(import.meta.dirname, 'cli.ts'), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const csv = readFileSync(resolve('sim-out', `${name}.csv`), 'utf8')
    .trim()
    .split('\n');
  const header = csv[0]!.split(',');
  const records = csv.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], Number(v)])));
  const last = records.at(-1)!;
  const best = Math.max(...records.map((r) => r.accuracy!));
  const epsilon = last.epsilon === undefined || Number.isNaN(last.epsilon) ? '∞ (no DP)' : last.epsilon.toFixed(2);
  const perRound = (performance.now() - t0) / 1000 / records.length;
  lines.push(
    `| ${row.population === 'K100' ? '100 × 80' : '1,000 × 8'} | ${row.label} | ${last.accuracy!.toFixed(4)} (round ${last.round}) | ${best.toFixed(4)} | ${epsilon} | ${perRound.toFixed(1)} | \`${command}\` |`,
  );
  writeFileSync(out, `${lines.join('\n')}\n`);
}
console.log(lines.join('\n'));
