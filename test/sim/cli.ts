/**
 * @module `npm run simulate -- [options]`: a federated training run with virtual clients on real
 * MNIST (or the user's own saved model and data module), through the real SDK and aggregator. Starts a local aggregator if none is running, shows
 * a progress bar per round, prints a per-round table, writes the curve as CSV and SVG.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, type LocalServer, REPO_ROOT, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import type { PrivacyOptions } from '../../client-sdk/src/admin-types.ts';
import { readModelFiles } from '../../client-sdk/src/cli/model-files.ts';
import { lineChartSvg, toCsv } from './chart.ts';
import { MODEL_NAMES, type ModelName } from './models.ts';
import { type AttackName, type PartitionName, type RoundReport, type SimulationOptions, simulate } from './runner.ts';
import { loadUserData } from './user-data.ts';

const HELP = `Usage: npm run simulate -- [options]

  --clients K        virtual clients (default 100; with --data, the number of clients it gives)
  --fraction C       fraction of clients per round (default 1: every client, as in Flower)
  --rounds N         rounds (default 20)
  --partition P      iid | dirichlet | pathological (default iid)
  --alpha A          Dirichlet concentration for --partition dirichlet (default 0.5)
  --model M          mlp (784-64-10) | 2nn (784-200-200-10) | cnn (default 2nn), trained on MNIST;
                     or PATH: a model saved by tfjs (a model.json, or its folder), trained on --data
  --data MODULE      with --model PATH: a module giving each client its examples (test/sim/user-data.ts:
                     export default ({ clients, seed }) => ({ clients: [{ xs, ys }, …], test?: { xs, ys } }))
  --epochs E         local epochs (default 1)
  --batch B          local batch size, or "inf" for the whole local data set (default 10)
  --lr LR            client learning rate, SGD (default 0.1; a saved model keeps its own unless given)
  --seed S           seed of the split, partition, client sampling and initial weights (default 1)
  --target ACC       stop when the test accuracy reaches ACC
  --strategy NAME    fedavg | fedprox | fedavgm | fedadam | fedyogi | fedadagrad | median | trimmedmean | krum | fedbuff (default fedavg)
  --sp KEY=VALUE     a strategy parameter, repeatable (e.g. --sp serverLearningRate=0.01 --sp beta=0.2 --sp bufferSize=10)
                     fedbuff runs asynchronously: --rounds counts published versions (bufferSize updates
                     each), --fraction is unused, and the table shows cumulative updates and staleness
  --concurrency N    fedbuff: virtual clients in flight at once (default 2 × bufferSize, at most --clients)
  --max-delay D      fedbuff: a client submits after 0..D other submissions, seeded (default 2 × concurrency)
  --encoding E       how clients encode their updates: float32 (default), float16 or int8
  --secagg           secure aggregation (SecAgg+): the server sees only each round's sum (needs ≥ 3 clients per round)
  --secagg-clip C    secure aggregation: clip each coordinate of Δ to [−C, C] before quantizing (default 1)
  --secagg-phase S   secure aggregation: deadline of each key phase, seconds (default 30; under --dp central
                     the advertise phase lasts this long, as drawn clients keep joining)
  --dp MODE          differential privacy: central (DP-FedAvg: the server draws each client with probability
                     --fraction at check-in, every client checks in, rounds close at --deadline) or local
  --dp-z Z           noise multiplier z (default 1)
  --dp-clip S        clip norm S (with --dp-adaptive, its start; default 1)
  --dp-clipping W    central: server | client (default server)
  --dp-adaptive      central: adaptive clipping to the median norm (Andrew et al. 2021)
  --dp-count-noise B central, adaptive: σ_b of the clipped-count noise (default clientsPerRound / 20)
  --dp-delta D       δ (default 1e-5)
  --dp-budget EPS    the task finishes before a round that would spend more than EPS
  --deadline SEC     central DP: round deadline, from its first draw (default 30)
  --malicious F      fraction of clients that attack (default 0)
  --attack A         gaussian | boost | signflip (default gaussian)
  --sigma S          noise of the gaussian attack (default 10)
  --boost X          factor of the boost attack (default 10)
  --workers N        worker threads training a round's clients in parallel (default: the machine's cores,
                     ${availableParallelism()} here; 0 trains them one after another in this thread; fedbuff: always 0)
  --url URL          an aggregator to use (default: FEDGE_URL, else http://127.0.0.1:$FEDGE_PORT (8787) if it
                     answers, else a new local one, on FEDGE_PORT when it is set)
  --admin-token T    its admin token (default: FEDGE_ADMIN_TOKEN, else .dev.vars)
  --out DIR          where to write <name>.csv and <name>.svg (default sim-out)
  --name NAME        file name stem (default: from the options)
`;

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string' },
    data: { type: 'string' },
    fraction: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '20' },
    partition: { type: 'string', default: 'iid' },
    alpha: { type: 'string', default: '0.5' },
    model: { type: 'string', default: '2nn' },
    epochs: { type: 'string', default: '1' },
    batch: { type: 'string', default: '10' },
    lr: { type: 'string' },
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
    workers: { type: 'string' },
    'max-delay': { type: 'string' },
    encoding: { type: 'string', default: 'float32' },
    secagg: { type: 'boolean', default: false },
    'secagg-clip': { type: 'string', default: '1' },
    'secagg-phase': { type: 'string', default: '30' },
    dp: { type: 'string' },
    'dp-z': { type: 'string', default: '1' },
    'dp-clip': { type: 'string', default: '1' },
    'dp-clipping': { type: 'string', default: 'server' },
    'dp-adaptive': { type: 'boolean', default: false },
    'dp-count-noise': { type: 'string' },
    'dp-delta': { type: 'string', default: '1e-5' },
    'dp-budget': { type: 'string' },
    deadline: { type: 'string', default: '30' },
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
const builtIn = MODEL_NAMES.includes(a.model as ModelName);
if (!builtIn && !existsSync(a.model)) fail(`--model ${a.model} is neither ${MODEL_NAMES.join(', ')} nor a saved model (no such file or folder)`);
if (!builtIn && a.data === undefined) fail(`--model ${a.model} is a saved model: give its clients' data with --data MODULE`);
if (builtIn && a.data !== undefined) fail(`--data is for a saved model (--model PATH); ${a.model} trains on MNIST`);
const model = (builtIn ? a.model : '2nn') as ModelName;
const clientsAsked = a.clients === undefined ? undefined : num('clients', a.clients, (v) => Number.isInteger(v) && v >= 1 && v <= 8_000);
let user: NonNullable<SimulationOptions['user']> | undefined;
if (!builtIn) {
  try {
    const data = await loadUserData(a.data!, { clients: clientsAsked, seed: Number(a.seed) });
    if (clientsAsked !== undefined && clientsAsked !== data.clients.length)
      fail(`--clients ${clientsAsked}, but --data ${a.data} gave ${data.clients.length} clients`);
    user = {
      model: await readModelFiles(a.model),
      data,
      dataPath: a.data!,
      ...(clientsAsked === undefined ? {} : { clientsAsked }),
      label: basename(resolve(a.model)),
      ...(a.lr === undefined ? {} : { learningRate: num('lr', a.lr, (v) => v > 0) }),
    };
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
}
const opts = {
  clients: user ? user.data.clients.length : (clientsAsked ?? 100),
  fraction: num('fraction', a.fraction, (v) => v > 0 && v <= 1),
  rounds: num('rounds', a.rounds, (v) => Number.isInteger(v) && v >= 1),
  alpha: num('alpha', a.alpha, (v) => v > 0),
  epochs: num('epochs', a.epochs, (v) => Number.isInteger(v) && v >= 1),
  batchSize: a.batch === 'inf' ? Infinity : num('batch', a.batch, (v) => Number.isInteger(v) && v >= 1),
  learningRate: num('lr', a.lr ?? '0.1', (v) => v > 0),
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
// FedBuff's driver orders check-ins and submissions itself, in this thread.
// FedBuff and secure aggregation run their clients concurrently in this thread.
const threads = fedbuff || a.secagg ? 0 : num('workers', a.workers ?? String(availableParallelism()), (v) => Number.isInteger(v) && v >= 0 && v <= 64);
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
if (a.dp !== undefined && a.dp !== 'central' && a.dp !== 'local') fail(`--dp must be central or local, not ${a.dp}`);
if (a['dp-clipping'] !== 'server' && a['dp-clipping'] !== 'client') fail(`--dp-clipping must be server or client`);
const dpCommon = {
  noiseMultiplier: num('dp-z', a['dp-z'], (v) => v > 0),
  clipNorm: num('dp-clip', a['dp-clip'], (v) => v > 0),
  delta: num('dp-delta', a['dp-delta'], (v) => v > 0 && v < 1),
  ...(a['dp-budget'] !== undefined ? { epsilonBudget: num('dp-budget', a['dp-budget'], (v) => v > 0) } : {}),
};
const privacy: PrivacyOptions | undefined =
  a.dp === 'central'
    ? {
        mode: 'central',
        ...dpCommon,
        samplingRate: opts.fraction,
        clipping: a['dp-clipping'] as 'server' | 'client',
        ...(a['dp-adaptive']
          ? {
              adaptiveClipping: a['dp-count-noise'] !== undefined ? { countNoise: num('dp-count-noise', a['dp-count-noise'], (v) => v > 0) } : {},
            }
          : {}),
      }
    : a.dp === 'local'
      ? { mode: 'local', ...dpCommon }
      : undefined;
const secure = a.secagg
  ? {
      secureAggregation: {
        clipRange: num('secagg-clip', a['secagg-clip'], (v) => v > 0),
        phaseSeconds: num('secagg-phase', a['secagg-phase'], (v) => Number.isInteger(v) && v >= 1 && v <= 3600),
      },
    }
  : {};
if (!['float32', 'float16', 'int8'].includes(a.encoding!)) fail(`--encoding must be float32, float16 or int8, got ${a.encoding}`);
const encoding = a.encoding === 'float32' ? {} : { updateEncoding: a.encoding as 'float16' | 'int8' };
const dpOpts = privacy ? { privacy, deadlineSeconds: num('deadline', a.deadline, (v) => Number.isInteger(v) && v >= 1) } : {};
const dpName = privacy
  ? `-dp${privacy.mode}-z${privacy.noiseMultiplier}-S${privacy.clipNorm}${privacy.mode === 'central' && privacy.adaptiveClipping ? '-adaptive' : ''}`
  : '';
const name =
  a.name ??
  `${user ? user.label.replace(/\.json$/, '') : model}-${user ? 'data' : partition}-K${opts.clients}-C${opts.fraction}-E${opts.epochs}-B${a.batch}-lr${user && a.lr === undefined ? 'saved' : opts.learningRate}-${a.strategy}${malicious > 0 ? `-${a.attack}${malicious}` : ''}${dpName}${a.secagg ? '-secagg' : ''}${a.encoding === 'float32' ? '' : `-${a.encoding}`}`;

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

/** Four decimals, or a dash for what was not measured (no held-out set, no accuracy for the loss). */
function f4(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : '—';
}

function bar(done: number, of: number, width = 20): string {
  const filled = Math.round((done / of) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

const agg = await aggregator();
const columns = fedbuff
  ? ['version', 'accuracy', 'loss', 'updates', 'refused', 'stale avg', 'stale max', 'examples', 'up MB', 'down MB', 'train s', 'round s']
  : [
      'round',
      'accuracy',
      'loss',
      'clients',
      'examples',
      'up MB',
      'down MB',
      'train s',
      'round s',
      ...(privacy ? ['ε'] : []),
      ...(privacy?.mode === 'central' ? ['drawn', 'late'] : []),
    ];
const widths = fedbuff ? [7, 8, 7, 7, 7, 9, 9, 8, 7, 7, 7, 7] : [5, 8, 7, 7, 8, 7, 7, 7, 7, 8, 5, 4];
const line = (cells: (string | number)[]) => cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
const perRound = Math.max(1, Math.round(opts.fraction * opts.clients));
const dpLine = privacy
  ? privacy.mode === 'central'
    ? `central DP: each client drawn with q = ${opts.fraction} at check-in (${perRound} expected), z = ${privacy.noiseMultiplier}, S = ${privacy.clipNorm}${privacy.adaptiveClipping ? ' (adaptive)' : ''}, δ = ${privacy.delta}\n`
    : `local DP: z = ${privacy.noiseMultiplier}, S = ${privacy.clipNorm}, δ = ${privacy.delta}\n`
  : '';
console.log(
  `fedge simulation: ${name}\naggregator ${agg.url}\n${dpLine}${fedbuff ? `${opts.clients} clients, asynchronous` : `${perRound} of ${opts.clients} clients per round (--fraction ${opts.fraction}), ${threads > 0 ? `training on ${threads} worker threads` : 'training in one thread'}`}\n`,
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
    ...(user ? { user } : {}),
    ...opts,
    ...attackOpts,
    ...asyncOpts,
    ...dpOpts,
    ...secure,
    ...encoding,
    threads,
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
            f4(r.accuracy),
            f4(r.loss),
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
          f4(r.accuracy),
          f4(r.loss),
          r.participants,
          r.examples,
          (r.bytesUp / 1e6).toFixed(2),
          (r.bytesDown / 1e6).toFixed(2),
          r.trainSeconds.toFixed(1),
          r.seconds.toFixed(1),
          ...(privacy ? [(r.epsilon ?? Number.NaN).toFixed(3)] : []),
          ...(privacy?.mode === 'central' ? [r.sampled ?? 0, r.late ?? 0] : []),
        ]),
      );
    },
  });
  const out = resolve(a.out);
  mkdirSync(out, { recursive: true });
  const csv = join(out, `${name}.csv`);
  const svg = join(out, `${name}.svg`);
  writeFileSync(csv, toCsv(reports.map((r) => ({ ...r }))));
  // Accuracy where there is one (a held-out set and a classification loss), else the held-out loss.
  const metric = reports.some((r) => Number.isFinite(r.accuracy)) ? 'accuracy' : 'loss';
  const heldOut = user ? "the data module's held-out set" : '2,000 held-out MNIST images';
  writeFileSync(
    svg,
    lineChartSvg([{ name, points: reports.map((r) => ({ x: fedbuff ? (r.updates ?? r.round) : r.round, y: r[metric] })) }], {
      title: `Test ${metric} per ${fedbuff ? 'update received' : 'round'}: ${name}`,
      xLabel: fedbuff ? 'updates received' : 'round',
      yLabel: `test ${metric} (${heldOut})`,
      ...(metric === 'accuracy' ? { yMin: 0, yMax: 1 } : {}),
      xIntegers: true,
      ...(opts.target !== undefined ? { target: { y: opts.target, label: `target ${opts.target}` } } : {}),
    }),
  );
  const best = metric === 'accuracy' ? Math.max(...reports.map((r) => r.accuracy)) : Math.min(...reports.map((r) => r.loss));
  const toTarget = fedbuff
    ? `, versions (updates) to ${opts.target}: ${result.roundsToTarget === null ? `not reached in ${opts.rounds}` : `${result.roundsToTarget} (${result.updatesToTarget})`}`
    : `, rounds to ${opts.target}: ${result.roundsToTarget ?? `not reached in ${opts.rounds}`}`;
  console.log(`\ntask ${result.taskId}: best ${metric} ${f4(best)}${opts.target !== undefined ? toTarget : ''}`);
  console.log(`wrote ${csv}\n      ${svg}`);
} finally {
  await agg.server?.stop();
  if (agg.stateDir) rmSync(agg.stateDir, { recursive: true, force: true });
}
