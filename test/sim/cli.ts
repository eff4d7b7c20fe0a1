/**
 * @module `npm run simulate -- [options]`: a federated training run with virtual clients on real
 * MNIST, through the real SDK and aggregator. Starts a local aggregator if none is running, shows
 * a progress bar per round, prints a per-round table, writes the curve as CSV and SVG.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, type LocalServer, REPO_ROOT, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import { lineChartSvg, toCsv } from './chart.ts';
import { MODEL_NAMES, type ModelName } from './models.ts';
import { type AttackName, type PartitionName, type RoundReport, simulate } from './runner.ts';

const HELP = `Usage: npm run simulate -- [options]

  --clients K        virtual clients (default 100)
  --fraction C       fraction of clients per round (default 1: every client, as in Flower)
  --rounds N         rounds (default 20)
  --partition P      iid | dirichlet | pathological (default iid)
  --alpha A          Dirichlet concentration for --partition dirichlet (default 0.5)
  --model M          mlp (784-64-10) | 2nn (784-200-200-10) | cnn (default 2nn)
  --epochs E         local epochs (default 1)
  --batch B          local batch size, or "inf" for the whole local data set (default 10)
  --lr LR            client learning rate, SGD (default 0.1)
  --seed S           seed of the split, partition, client sampling and initial weights (default 1)
  --target ACC       stop when the test accuracy reaches ACC
  --strategy NAME    fedavg | fedprox | fedavgm | fedadam | fedyogi | fedadagrad | median | trimmedmean | krum | fedbuff (default fedavg)
  --sp KEY=VALUE     a strategy parameter, repeatable (e.g. --sp serverLearningRate=0.01 --sp beta=0.2 --sp bufferSize=10)
                     fedbuff runs asynchronously: --rounds counts published versions (bufferSize updates
                     each), --fraction is unused, and the table shows cumulative updates and staleness
  --concurrency N    fedbuff: virtual clients in flight at once (default 2 × bufferSize, at most --clients)
  --max-delay D      fedbuff: a client submits after 0..D other submissions, seeded (default 2 × concurrency)
  --malicious F      fraction of clients that attack (default 0)
  --attack A         gaussian | boost | signflip (default gaussian)
  --sigma S          noise of the gaussian attack (default 10)
  --boost X          factor of the boost attack (default 10)
  --url URL          an aggregator to use (default: FEDGE_URL, else http://127.0.0.1:$FEDGE_PORT (8787) if it
                     answers, else a new local one, on FEDGE_PORT when it is set)
  --admin-token T    its admin token (default: FEDGE_ADMIN_TOKEN, else .dev.vars)
  --out DIR          where to write <name>.csv and <name>.svg (default sim-out)
  --name NAME        file name stem (default: from the options)
`;

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    fraction: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '20' },
    partition: { type: 'string', default: 'iid' },
    alpha: { type: 'string', default: '0.5' },
    model: { type: 'string', default: '2nn' },
    epochs: { type: 'string', default: '1' },
    batch: { type: 'string', default: '10' },
    lr: { type: 'string', default: '0.1' },
    seed: { type: 'string', default: '1' },
    target: { type: 'string' },
    url: { type: 'string' },
    'admin-token': { type: 'string' },
    out: { type: 'string', default: 'sim-out' },
    name: { type: 'string' },
    strategy: { type: 'string', default: 'fedavg' },
    sp: { type: 'string', multiple: true, default: [] },
    malicious: { type: 'string', default: '0' },
    attack: { type: 'string', default: 'gaussian' },
    sigma: { type: 'string', default: '10' },
    boost: { type: 'string', default: '10' },
    concurrency: { type: 'string' },
    'max-delay': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(HELP);
  process.exit(0);
}

function num(name: string, value: string, check: (v: number) => boolean): number {
  const v = Number(value);
  if (!Number.isFinite(v) || !check(v)) fail(`--${name} ${value} is out of range`);
  return v;
}
function fail(message: string): never {
  console.error(`simulate: ${message}\n\n${HELP}`);
  process.exit(2);
}

const partition = a.partition as PartitionName;
if (!['iid', 'dirichlet', 'pathological'].includes(partition)) fail(`unknown --partition ${a.partition}`);
const model = a.model as ModelName;
if (!MODEL_NAMES.includes(model)) fail(`unknown --model ${a.model}`);
const opts = {
  clients: num('clients', a.clients, (v) => Number.isInteger(v) && v >= 1 && v <= 8_000),
  fraction: num('fraction', a.fraction, (v) => v > 0 && v <= 1),
  rounds: num('rounds', a.rounds, (v) => Number.isInteger(v) && v >= 1),
  alpha: num('alpha', a.alpha, (v) => v > 0),
  epochs: num('epochs', a.epochs, (v) => Number.isInteger(v) && v >= 1),
  batchSize: a.batch === 'inf' ? Infinity : num('batch', a.batch, (v) => Number.isInteger(v) && v >= 1),
  learningRate: num('lr', a.lr, (v) => v > 0),
  seed: num('seed', a.seed, Number.isInteger),
  ...(a.target !== undefined ? { target: num('target', a.target, (v) => v > 0 && v <= 1) } : {}),
  strategy: {
    name: a.strategy,
    ...Object.fromEntries(
      a.sp.map((kv) => {
        const [k, v] = kv.split('=');
        if (!k || v === undefined) fail(`--sp takes KEY=VALUE, got ${kv}`);
        return [k, num('sp', v, () => true)];
      }),
    ),
  },
};
const fedbuff = a.strategy === 'fedbuff';
const asyncOpts = {
  ...(a.concurrency !== undefined ? { concurrency: num('concurrency', a.concurrency, (v) => Number.isInteger(v) && v >= 1) } : {}),
  ...(a['max-delay'] !== undefined ? { maxDelay: num('max-delay', a['max-delay'], (v) => Number.isInteger(v) && v >= 0) } : {}),
};
const malicious = num('malicious', a.malicious, (v) => v >= 0 && v < 1);
if (!['gaussian', 'boost', 'signflip'].includes(a.attack)) fail(`unknown --attack ${a.attack}`);
const attackOpts =
  malicious > 0
    ? {
        malicious: {
          fraction: malicious,
          attack: a.attack as AttackName,
          sigma: num('sigma', a.sigma, (v) => v > 0),
          boost: num('boost', a.boost, (v) => v > 0),
        },
      }
    : {};
const name =
  a.name ??
  `${model}-${partition}-K${opts.clients}-C${opts.fraction}-E${opts.epochs}-B${a.batch}-lr${opts.learningRate}-${a.strategy}${malicious > 0 ? `-${a.attack}${malicious}` : ''}`;

async function aggregator(): Promise<{ url: string; token: string; server?: LocalServer; stateDir?: string }> {
  const devVars = join(REPO_ROOT, '.dev.vars');
  const savedToken = existsSync(devVars)
    ? readFileSync(devVars, 'utf8')
        .match(/^ADMIN_TOKEN=(.*)$/m)?.[1]
        ?.trim()
    : undefined;
  const token = a['admin-token'] ?? process.env.FEDGE_ADMIN_TOKEN ?? savedToken;
  const port = process.env.FEDGE_PORT ? Number(process.env.FEDGE_PORT) : undefined;
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65_535))
    fail(`FEDGE_PORT must be a port number (1-65535), got "${process.env.FEDGE_PORT}"`);
  const url = a.url ?? process.env.FEDGE_URL ?? `http://127.0.0.1:${port ?? 8787}`;
  const up = await fetch(`${url}/v1/health`).then(
    (r) => r.ok,
    () => false,
  );
  if (up && token) return { url, token };
  const chosen = a.url ?? process.env.FEDGE_URL;
  if (chosen) fail(up ? 'no admin token: pass --admin-token or set FEDGE_ADMIN_TOKEN' : `no aggregator answers at ${chosen}`);
  const stateDir = mkdtempSync(join(tmpdir(), 'fedge-sim-'));
  console.error('starting a local aggregator (wrangler dev) for this run…');
  const server = await startLocalServer({ port: port ?? (await findFreePort()), stateDir, adminToken: `sim-${process.pid}`, onOutput: () => {} });
  return { url: server.url, token: server.adminToken, server, stateDir };
}

function bar(done: number, of: number, width = 20): string {
  const filled = Math.round((done / of) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

const agg = await aggregator();
const columns = fedbuff
  ? ['version', 'accuracy', 'loss', 'updates', 'refused', 'stale avg', 'stale max', 'examples', 'up MB', 'down MB', 'train s', 'round s']
  : ['round', 'accuracy', 'loss', 'clients', 'examples', 'up MB', 'down MB', 'train s', 'round s'];
const widths = fedbuff ? [7, 8, 7, 7, 7, 9, 9, 8, 7, 7, 7, 7] : [5, 8, 7, 7, 8, 7, 7, 7, 7];
const line = (cells: (string | number)[]) => cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
const perRound = Math.max(1, Math.round(opts.fraction * opts.clients));
console.log(
  `fedge simulation: ${name}\naggregator ${agg.url}\n${fedbuff ? `${opts.clients} clients, asynchronous` : `${perRound} of ${opts.clients} clients per round (--fraction ${opts.fraction})`}\n`,
);
console.log(line(columns));
const tty = process.stderr.isTTY;
const reports: RoundReport[] = [];
try {
  const result = await simulate({
    baseUrl: agg.url,
    adminToken: agg.token,
    partition,
    model,
    ...opts,
    ...attackOpts,
    ...asyncOpts,
    onClient: (round, done, of) => {
      if (tty)
        process.stderr.write(`\r ${fedbuff ? 'version' : 'round'} ${round}/${opts.rounds} ${bar(done, of)} ${done}/${of} ${fedbuff ? 'updates' : 'clients'}`);
    },
    onRound: (r) => {
      if (tty) process.stderr.write('\r\x1b[K');
      reports.push(r);
      if (fedbuff) {
        console.log(
          line([
            r.version,
            r.accuracy.toFixed(4),
            r.loss.toFixed(4),
            r.updates ?? 0,
            r.refused ?? 0,
            (r.meanStaleness ?? 0).toFixed(2),
            r.maxStaleness ?? 0,
            r.examples,
            (r.bytesUp / 1e6).toFixed(2),
            (r.bytesDown / 1e6).toFixed(2),
            r.trainSeconds.toFixed(1),
            r.seconds.toFixed(1),
          ]),
        );
        return;
      }
      console.log(
        line([
          r.round,
          r.accuracy.toFixed(4),
          r.loss.toFixed(4),
          r.participants,
          r.examples,
          (r.bytesUp / 1e6).toFixed(2),
          (r.bytesDown / 1e6).toFixed(2),
          r.trainSeconds.toFixed(1),
          r.seconds.toFixed(1),
        ]),
      );
    },
  });
  const out = resolve(a.out);
  mkdirSync(out, { recursive: true });
  const csv = join(out, `${name}.csv`);
  const svg = join(out, `${name}.svg`);
  writeFileSync(csv, toCsv(reports.map((r) => ({ ...r }))));
  writeFileSync(
    svg,
    lineChartSvg([{ name, points: reports.map((r) => ({ x: fedbuff ? (r.updates ?? r.round) : r.round, y: r.accuracy })) }], {
      title: `Test accuracy per ${fedbuff ? 'update received' : 'round'}: ${name}`,
      xLabel: fedbuff ? 'updates received' : 'round',
      yLabel: 'test accuracy (2,000 held-out MNIST images)',
      yMin: 0,
      yMax: 1,
      xIntegers: true,
      ...(opts.target !== undefined ? { target: { y: opts.target, label: `target ${opts.target}` } } : {}),
    }),
  );
  const best = Math.max(...reports.map((r) => r.accuracy));
  const toTarget = fedbuff
    ? `, versions (updates) to ${opts.target}: ${result.roundsToTarget === null ? `not reached in ${opts.rounds}` : `${result.roundsToTarget} (${result.updatesToTarget})`}`
    : `, rounds to ${opts.target}: ${result.roundsToTarget ?? `not reached in ${opts.rounds}`}`;
  console.log(`\ntask ${result.taskId}: best accuracy ${best.toFixed(4)}${opts.target !== undefined ? toTarget : ''}`);
  console.log(`wrote ${csv}\n      ${svg}`);
} finally {
  await agg.server?.stop();
  if (agg.stateDir) rmSync(agg.stateDir, { recursive: true, force: true });
}
