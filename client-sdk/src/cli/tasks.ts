/**
 * @module `fedge tasks …`: create a task from a saved tfjs model, list, show, pause, resume, stop
 * and delete tasks.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { CreateTaskOptions } from '../admin.ts';
import { readModelFiles } from './model-files.ts';
import { CliError, EXIT, fields, shortTime, table } from './output.ts';
import { adminFor, type Context, handler, positiveInt, positiveNumber } from './program.ts';

interface CreateFlags {
  model: string;
  name: string;
  clientsPerRound?: number;
  minClients?: number;
  deadline?: number;
  overSelection?: number;
  maxExamples?: number;
  maxClients?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  optimizer?: string;
  strategy?: string;
  sp: string[];
  privacy?: string;
  encoding?: string;
  shards?: string;
}

export function registerTaskCommands(program: Command, ctx: Context): void {
  const tasks = program.command('tasks').description('create, list, show, pause, resume, stop and delete tasks');

  tasks
    .command('create')
    .description('create a task from a saved tfjs Layers model (the model.json that model.save wrote, and its weight files)')
    .requiredOption('--model <path>', 'model.json, or the folder holding it')
    .requiredOption('--name <name>', "the task's name")
    .option('--clients-per-round <n>', 'accepted updates that close a round [10]', positiveInt('--clients-per-round'))
    .option('--min-clients <n>', 'fewest accepted updates to publish at the deadline', positiveInt('--min-clients'))
    .option('--deadline <seconds>', 'round deadline, from its first assignment', positiveInt('--deadline'))
    .option('--over-selection <factor>', 'assign this many times clients-per-round (e.g. 1.3)', positiveNumber('--over-selection'))
    .option('--max-examples <n>', "cap on a client's example count in the weighting", positiveInt('--max-examples'))
    .option('--max-clients <n>', 'at most this many clients, registered or enrolled [10000]', positiveInt('--max-clients'))
    .option('--epochs <n>', 'local epochs per round', positiveInt('--epochs'))
    .option('--batch-size <n>', 'local batch size', positiveInt('--batch-size'))
    .option('--lr <rate>', "clients' learning rate (default: the model's training config)", positiveNumber('--lr'))
    .option('--optimizer <name>', 'sgd | adam (default: the training config, else sgd)')
    .option('--strategy <name>', 'fedavg | fedprox | fedavgm | fedadam | fedyogi | fedadagrad | median | trimmedmean | krum | fedbuff (default fedavg)')
    .option('--sp <key=value>', 'a strategy parameter, repeatable (e.g. --sp serverLearningRate=0.01)', (v: string, all: string[]) => [...all, v], [])
    .option('--encoding <name>', 'how clients encode their updates: float32 | float16 | int8 [float32]')
    .option('--shards <n>', 'aggregator shards a round is spread over: 1-64, or auto [auto: one per 1,000 assignments]')
    .option(
      '--privacy <json>',
      'differential privacy, as JSON (README "Differential privacy"), e.g. \'{"mode":"central","noiseMultiplier":1.1,"clipNorm":0.5,"samplingRate":0.1,"epsilonBudget":8}\'',
    )
    .action(
      handler(ctx, async (g, flags: CreateFlags) => {
        const artifacts = await readModelFiles(flags.model);
        const options = createOptions(flags);
        const task = await adminFor(ctx, g).createTask(artifacts, options);
        return { json: task, human: `created task ${task.id} ("${flags.name}"): ${task.numParams} parameters, version ${task.currentVersion}` };
      }),
    );

  tasks
    .command('ls')
    .description('tasks, newest first')
    .option('--limit <n>', 'at most this many [50, ≤ 200]', positiveInt('--limit'), 50)
    .action(
      handler(ctx, async (g, flags: { limit: number }) => {
        const list = await adminFor(ctx, g).listTasks({ limit: flags.limit });
        const rows = list.map((t) => ({ ...t, createdAt: shortTime(t.createdAt) }));
        return {
          json: list,
          human: table(rows, [
            ['id', 'ID'],
            ['name', 'NAME'],
            ['status', 'STATUS'],
            ['currentVersion', 'VERSION'],
            ['numParams', 'PARAMS'],
            ['createdAt', 'CREATED (UTC)'],
          ]),
        };
      }),
    );

  tasks
    .command('show')
    .description("a task's settings, its open round and its last rounds")
    .argument('<task>', 'task id')
    .option('--rounds <n>', 'how many past rounds to list [10]', positiveInt('--rounds'), 10)
    .action(
      handler(ctx, async (g, taskId: string, flags: { rounds: number }) => {
        const admin = adminFor(ctx, g);
        const [task, rounds] = await Promise.all([admin.getTask(taskId), admin.listRounds(taskId, flags.rounds)]);
        const r = task.currentRound;
        const human = [
          fields([
            ['id', task.id],
            ['name', task.name],
            ['status', task.status],
            ['version', task.currentVersion],
            ['parameters', task.numParams],
            ['strategy', task.strategy],
            ['privacy', task.privacy],
            [
              'privacy spent',
              task.privacySpent
                ? `ε = ${task.privacySpent.epsilon.toFixed(3)} at δ = ${task.privacy?.delta} after ${task.privacySpent.rounds} round(s)${task.privacy?.epsilonBudget ? ` of a budget of ${task.privacy.epsilonBudget}` : ''}${task.privacySpent.exhausted ? ' (exhausted: finished)' : ''}; next clip norm ${task.privacySpent.clipNorm}`
                : null,
            ],
            ['rounds', task.rounds],
            ['plan', task.plan],
            ['open round', r ? `${r.round}: ${r.accepted} accepted, ${r.rejected} rejected, ${r.assigned} assigned (${r.status})` : null],
          ]),
          '',
          table(
            rounds.map((x) => ({ ...x, openedAt: shortTime(x.openedAt), rejected: x.rejected })),
            [
              ['round', 'ROUND'],
              ['status', 'STATUS'],
              ['accepted', 'ACCEPTED'],
              ['rejected', 'REJECTED'],
              ['resultVersion', 'VERSION'],
              ['closeReason', 'CLOSED BY'],
              ['openedAt', 'OPENED (UTC)'],
            ],
          ),
        ].join('\n');
        return { json: { ...task, recentRounds: rounds }, human };
      }),
    );

  for (const [name, what] of [
    ['pause', 'pause: check-ins are told to come back later, the deadline clock stops, nothing accepted is lost'],
    ['resume', 'resume a paused task'],
    ['stop', 'stop for good: no new assignments, the open round ends by its rules, no new rounds'],
  ] as const) {
    tasks
      .command(name)
      .description(what)
      .argument('<task>', 'task id')
      .action(
        handler(ctx, async (g, taskId: string) => {
          const admin = adminFor(ctx, g);
          const result = await (name === 'pause' ? admin.pauseTask(taskId) : name === 'resume' ? admin.resumeTask(taskId) : admin.stopTask(taskId));
          return { json: result, human: `task ${taskId}: ${result.status}` };
        }),
      );
  }

  tasks
    .command('delete')
    .description('delete a stopped task whose last round has ended, with its clients, keys, rounds and every version (nothing is kept)')
    .argument('<task>', 'task id')
    .option('-y, --yes', 'do not ask for confirmation', false)
    .action(
      handler(ctx, async (g, taskId: string, flags: { yes: boolean }) => {
        if (!flags.yes) await confirm(ctx, taskId);
        const result = await adminFor(ctx, g).deleteTask(taskId);
        const d = result.deleted;
        return { json: result, human: `deleted task ${taskId}: ${d.versions} versions, ${d.rounds} rounds, ${d.clients} clients, ${d.blobs} stored blobs` };
      }),
    );
}

function createOptions(f: CreateFlags): CreateTaskOptions {
  const options: CreateTaskOptions = { name: f.name };
  const rounds = defined({
    clientsPerRound: f.clientsPerRound,
    minClients: f.minClients,
    deadlineSeconds: f.deadline,
    overSelection: f.overSelection,
    maxExamplesPerClient: f.maxExamples,
  });
  if (Object.keys(rounds).length) options.rounds = rounds;
  if (f.optimizer !== undefined && f.optimizer !== 'sgd' && f.optimizer !== 'adam') throw new CliError('invalid_argument', '--optimizer must be sgd or adam');
  const plan = defined({ epochs: f.epochs, batchSize: f.batchSize, learningRate: f.lr, optimizer: f.optimizer as 'sgd' | 'adam' | undefined });
  if (Object.keys(plan).length) options.plan = plan;
  if (f.strategy) options.strategy = { name: f.strategy, ...strategyParams(f.sp) };
  else if (f.sp.length) throw new CliError('invalid_argument', '--sp needs --strategy');
  if (f.maxClients !== undefined) options.maxClients = f.maxClients;
  if (f.privacy !== undefined) options.privacy = privacyOption(f.privacy);
  if (f.encoding !== undefined) {
    if (f.encoding !== 'float32' && f.encoding !== 'float16' && f.encoding !== 'int8')
      throw new CliError('invalid_argument', '--encoding must be float32, float16 or int8');
    options.updateEncoding = f.encoding;
  }
  if (f.shards !== undefined) {
    const n = Number(f.shards);
    if (f.shards !== 'auto' && !(Number.isInteger(n) && n >= 1)) throw new CliError('invalid_argument', '--shards must be a positive integer or auto');
    options.shards = f.shards === 'auto' ? 'auto' : n;
  }
  return options;
}

/** `--privacy`: a JSON object (the server validates its fields: `invalid_privacy`). */
function privacyOption(raw: string): NonNullable<CreateTaskOptions['privacy']> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new CliError('invalid_argument', `--privacy must be a JSON object, e.g. '{"mode":"local","noiseMultiplier":2,"clipNorm":1}'`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CliError('invalid_argument', '--privacy must be a JSON object');
  return v as NonNullable<CreateTaskOptions['privacy']>;
}

/** `key=value` pairs; values that read as numbers become numbers. */
export function strategyParams(pairs: string[]): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError('invalid_argument', `--sp ${pair}: expected key=value`);
    const value = pair.slice(eq + 1);
    out[pair.slice(0, eq)] = value.trim() !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
  }
  return out;
}

function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}

/** Asks for the task id to be typed again; refuses where no one can answer (no terminal). */
async function confirm(ctx: Context, taskId: string): Promise<void> {
  if (!ctx.io.isTTY || !process.stdin.isTTY) throw new CliError('confirmation_required', `deleting task ${taskId} removes everything it holds: pass --yes`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Delete task ${taskId} and everything it holds? Type its id to confirm: `);
    if (answer.trim() !== taskId) throw new CliError('confirmation_required', 'not confirmed: nothing deleted', EXIT.usage);
  } finally {
    rl.close();
  }
}
