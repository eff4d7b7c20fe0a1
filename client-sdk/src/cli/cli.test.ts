/**
 * The real `fedge` executable (a child `node` process running client-sdk/src/cli/main.ts) against
 * the real aggregator (`wrangler dev`, test/node/global-setup.ts): a task created from a model.json
 * on disk, clients and keys, a watched round that moves as clients submit, versions listed and
 * downloaded, the task's lifecycle, login profiles, and an exit code and server code for each failure.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { saveArgmaxModel } from '../../../test/sim/saved-model.ts';
import { argmaxData } from '../../../test/sim/synthetic.ts';
import { useWasmBackend } from '../../../test/sim/tf-backend.ts';
import { FedgeClient } from '../client.ts';
import { decodeTensors } from '../protocol/safetensors.ts';
import { EXIT, table } from './output.ts';
import { roundLine } from './watch.ts';

const MAIN = join(import.meta.dirname, 'main.ts');
const url = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');
const work = mkdtempSync(join(tmpdir(), 'fedge-cli-'));
/** No config file, no .dev.vars: only what each test passes. */
const baseEnv = { PATH: process.env.PATH ?? '', HOME: work, XDG_CONFIG_HOME: join(work, 'config') };
const env = { ...baseEnv, FEDGE_URL: url, FEDGE_ADMIN_TOKEN: adminToken };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function fedge(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN, ...args], { env: options.env ?? env, cwd: work, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
    child.stdin?.end(options.input ?? '');
  });
}

async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const r = await fedge([...args, '--json']);
  expect(r.stderr, r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** A watch process whose JSON events are collected as they arrive. */
function watch(args: string[]): {
  child: ChildProcess;
  events: Record<string, unknown>[];
  until: (p: (e: Record<string, unknown>) => boolean) => Promise<void>;
  exit: Promise<number>;
} {
  const child = spawn(process.execPath, [MAIN, 'watch', ...args, '--json', '--interval', '100'], { env, cwd: work });
  const events: Record<string, unknown>[] = [];
  let buffered = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const l of lines) if (l.trim()) events.push(JSON.parse(l));
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number>((r) => child.on('exit', (code) => r(code ?? -1)));
  const until = async (p: (e: Record<string, unknown>) => boolean) => {
    const deadline = Date.now() + 30_000;
    while (!events.some(p)) {
      if (Date.now() > deadline) throw new Error(`watch never showed the event; got ${JSON.stringify(events)}`);
      await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 500))]);
    }
  };
  return { child, events, until, exit };
}

async function participate(taskId: string, token: string, seed: number): Promise<void> {
  const { xs, ys } = argmaxData(24, seed);
  const result = await new FedgeClient({ baseUrl: url, taskId, token }).participate({ xs, ys });
  tf.dispose([xs, ys]);
  expect(result.status).toBe('accepted');
}

const modelDir = join(work, 'saved');
let params: number;

beforeAll(async () => {
  await useWasmBackend();
  params = await saveArgmaxModel(modelDir);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a task run from the command line', () => {
  let taskId: string;
  const tokens: string[] = [];

  it('creates a task from the model.json on disk, with its round rules, plan and strategy', async () => {
    const created = await json([
      'tasks',
      'create',
      '--model',
      join(modelDir, 'model.json'),
      '--name',
      'cli task',
      '--clients-per-round',
      '2',
      '--deadline',
      '120',
      '--strategy',
      'fedavgm',
      '--sp',
      'momentum=0.5',
    ]);
    taskId = created.id as string;
    expect(created.numParams).toBe(params);
    const task = await json(['tasks', 'show', taskId]);
    expect(task).toMatchObject({ name: 'cli task', status: 'active', currentVersion: 0, rounds: { clientsPerRound: 2, deadlineSeconds: 120 } });
    expect(task.plan).toMatchObject({ learningRate: 0.2, loss: 'categoricalCrossentropy', optimizer: 'sgd' }); // from the saved training config
    expect(task.strategy).toMatchObject({ name: 'fedavgm', momentum: 0.5 });

    const ls = await fedge(['tasks', 'ls']);
    expect(ls.code).toBe(0);
    const header = ls.stdout.split('\n')[0]!;
    expect(header.split(/\s{2,}/)).toEqual(['ID', 'NAME', 'STATUS', 'VERSION', 'PARAMS', 'CREATED (UTC)']);
    expect(ls.stdout.split('\n').find((l) => l.startsWith(taskId))).toMatch(new RegExp(`^${taskId}\\s+cli task\\s+active\\s+0\\s+${params}\\s`));
  });

  it('adds clients (their tokens printed once), lists and revokes them, and manages enrollment keys', async () => {
    for (const label of ['phone-a', 'phone-b', 'phone-c']) {
      const creds = await json(['clients', 'add', taskId, '--label', label, '--expires-in', '3600']);
      expect(creds.token).toMatch(/^c_[0-9a-f]+\./);
      tokens.push(creds.token as string);
    }
    const human = await fedge(['clients', 'add', taskId]);
    expect(human.stdout).toMatch(/^client: +c_[0-9a-f]+\ntoken: +c_\S+\nexpires: +never\n/);
    const list = await json<{ clientId: string; label: string | null; status: string }[]>(['clients', 'ls', taskId]);
    expect(list.map((c) => c.label).sort()).toEqual([null, 'phone-a', 'phone-b', 'phone-c']);
    const c = list.find((x) => x.label === 'phone-c')!;
    expect((await json(['clients', 'revoke', taskId, c.clientId])).status).toBe('revoked');
    const after = await json<{ clientId: string; status: string }[]>(['clients', 'ls', taskId]);
    expect(after.find((x) => x.clientId === c.clientId)?.status).toBe('revoked');

    const key = await json(['keys', 'create', taskId, '--label', 'app', '--max-clients', '5']);
    expect(key.key).toMatch(/^ek_/);
    expect(await json(['keys', 'ls', taskId])).toEqual([expect.objectContaining({ id: key.id, label: 'app', status: 'active', maxClients: 5, enrolled: 0 })]);
    expect((await json(['keys', 'revoke', taskId, key.id as string])).status).toBe('revoked');
  });

  it('watches the round move as clients submit, and sees the version it publishes', async () => {
    const w = watch([taskId, '--until-version', '1']);
    await w.until((e) => e.event === 'round');
    await participate(taskId, tokens[0]!, 1);
    await w.until((e) => e.event === 'round' && (e.round as { accepted: number }).accepted === 1);
    await participate(taskId, tokens[1]!, 2);
    expect(await w.exit).toBe(EXIT.ok);
    const version = w.events.find((e) => e.event === 'version');
    expect(version).toMatchObject({ version: 1, participants: 2, numExamples: 48, round: 1 });
    expect(w.events.at(-1)).toEqual({ event: 'end', reason: 'version_reached', version: 1 });
    // A line per change of round 1: its assignments move too, so a count can repeat, but it only grows, from 0 to 1 and on.
    const accepted = w.events
      .filter((e) => e.event === 'round' && (e.round as { round: number } | null)?.round === 1)
      .map((e) => (e.round as { accepted: number }).accepted);
    expect(accepted.every((n, i) => i === 0 || n >= accepted[i - 1]!)).toBe(true);
    expect([...new Set(accepted)].slice(0, 2)).toEqual([0, 1]);
  });

  it('lists versions and downloads one as tfjs files and as safetensors that match the manifest', async () => {
    const versions = await json<{ version: number; contentHash: string; participants: number; parentVersion: number | null }[]>(['versions', 'ls', taskId]);
    expect(versions.map((v) => [v.version, v.parentVersion, v.participants])).toEqual([
      [1, 0, 2],
      [0, null, 0],
    ]);
    const human = await fedge(['versions', 'ls', taskId]);
    expect(human.stdout.split('\n')[1]).toMatch(new RegExp(`^\\s*1\\s+0\\s+1\\s+fedavgm\\s+2\\s+48\\s+-\\s+-\\s+${versions[0]!.contentHash.slice(0, 12)}\\s`));

    const st = await json<{ files: { path: string; bytes: number }[] }>(['versions', 'get', taskId, '1', '--format', 'safetensors', '-o', join(work, 'st')]);
    const blob = readFileSync(st.files[0]!.path);
    expect(createHash('sha256').update(blob).digest('hex')).toBe(versions[0]!.contentHash);
    const tensors = decodeTensors(blob).tensors;

    const tj = await json<{ version: number; files: { path: string }[] }>(['versions', 'get', taskId, 'current', '-o', join(work, 'tfjs')]);
    expect(tj.version).toBe(1);
    expect(tj.files.map((f) => f.path.split('/').pop())).toEqual(['model.json', 'weights.bin']);
    const modelJson = JSON.parse(readFileSync(join(work, 'tfjs', 'model.json'), 'utf8'));
    const weights = readFileSync(join(work, 'tfjs', 'weights.bin'));
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs: modelJson.weightsManifest[0].weights,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }),
    );
    const loaded = model.weights.map((w) => Array.from(w.read().dataSync()));
    model.dispose();
    expect(loaded).toEqual(tensors.map((t) => Array.from(t.data)));
  });

  it('pauses, resumes and stops; a running task is not deleted; a stopped one is, after confirmation', async () => {
    expect((await json(['tasks', 'pause', taskId])).status).toBe('paused');
    expect((await fedge(['tasks', 'resume', taskId])).stdout).toBe(`task ${taskId}: active\n`);
    const running = await fedge(['tasks', 'delete', taskId, '--yes']);
    expect(running.code).toBe(EXIT.conflict);
    expect(running.stderr).toMatch(/^fedge: error \[task_not_stopped\] \(HTTP 409\): stop the task first/);
    expect((await json(['tasks', 'stop', taskId])).status).toBe('stopped');

    const w = watch([taskId]); // a stopped task with no client assigned: nothing left to watch
    expect(await w.exit).toBe(EXIT.ok);
    expect(w.events.at(-1)).toEqual({ event: 'end', reason: 'task_stopped', version: 1 });

    const unconfirmed = await fedge(['tasks', 'delete', taskId]); // no terminal to ask: refused
    expect(unconfirmed).toMatchObject({ code: EXIT.usage, stdout: '' });
    expect(unconfirmed.stderr).toMatch(/\[confirmation_required\].*pass --yes/);
    const deleted = await json(['tasks', 'delete', taskId, '--yes']);
    expect(deleted).toEqual({ id: taskId, deleted: { versions: 2, rounds: 1, clients: 4, blobs: expect.any(Number) } });
    const gone = await fedge(['tasks', 'show', taskId, '--json']);
    expect(gone.code).toBe(EXIT.notFound);
    expect(JSON.parse(gone.stderr)).toEqual({ error: { code: 'task_not_found', status: 404, message: expect.stringContaining(taskId) } });
  });
});

describe('watch', () => {
  it('ends on Ctrl-C with exit code 0', async () => {
    const created = await json(['tasks', 'create', '--model', modelDir, '--name', 'watched']);
    const w = watch([created.id as string]);
    await w.until((e) => e.event === 'round');
    w.child.kill('SIGINT');
    expect(await w.exit).toBe(EXIT.ok);
    expect(w.events.at(-1)).toEqual({ event: 'end', reason: 'interrupted', version: 0 });
  });

  it('draws the round as one line: progress against the goal, rejections by code, time to the deadline', () => {
    const r = {
      round: 4,
      status: 'open' as const,
      baseVersion: 3,
      openedAt: '1970-01-01T00:00:00.000Z',
      deadlineAt: '1970-01-01T00:00:52.000Z',
      assigned: 6,
      accepted: 4,
      rejected: 1,
      rejectedByCode: { invalid_update: 1 },
    };
    expect(roundLine('active', r, 10, 400)).toBe(
      'round 4 [########------------] 4/10 accepted · 1 rejected (invalid_update 1) · 6 assigned · deadline in 52 s',
    );
    expect(roundLine('paused', { ...r, rejected: 0, rejectedByCode: {} }, 10, 400)).toBe(
      'paused · round 4 [########------------] 4/10 accepted · 6 assigned · deadline clock stopped',
    );
    expect(roundLine('active', { ...r, deadlineAt: null }, 8, 0)).toMatch(/\[##########----------\] 4\/8 accepted .* deadline clock not started$/);
    expect(roundLine('stopped', null, 8, 0)).toBe('stopped: no open round');
  });

  it('aligns tables: text left, numbers right, "-" for none', () => {
    expect(
      table(
        [
          { a: 'x', n: 5 },
          { a: 'long', n: 120 },
          { a: null, n: null },
        ],
        [
          ['a', 'NAME'],
          ['n', 'N'],
        ],
      ),
    ).toBe('NAME    N\nx       5\nlong  120\n-       -');
  });
});

describe('a differentially private task from the command line', () => {
  it('creates it with --privacy, shows what it spent, and lists ε beside each version', async () => {
    const privacy = { mode: 'central', noiseMultiplier: 1.5, clipNorm: 1, samplingRate: 1, epsilonBudget: 50 };
    const created = await json([
      'tasks',
      'create',
      '--model',
      modelDir,
      '--name',
      'dp cli',
      '--clients-per-round',
      '2',
      '--min-clients',
      '1',
      '--deadline',
      '2',
      '--privacy',
      JSON.stringify(privacy),
    ]);
    const id = created.id as string;
    expect((await json(['tasks', 'show', id])).privacy).toMatchObject({ ...privacy, clipping: 'server', delta: 1e-5 });
    const tokens = [];
    for (let i = 0; i < 2; i++) tokens.push((await json(['clients', 'add', id])).token as string);
    await Promise.all(tokens.map((t, i) => participate(id, t, 10 + i)));
    const w = watch([id, '--until-version', '1']);
    expect(await w.exit).toBe(EXIT.ok);
    const v = await json<{ version: number; privacy: { epsilon: number; rounds: number } | null }[]>(['versions', 'ls', id]);
    expect(v.map((x) => [x.version, x.privacy?.rounds ?? null])).toEqual([
      [1, 1],
      [0, null],
    ]);
    const human = (await fedge(['versions', 'ls', id])).stdout.split('\n');
    expect(human[0]).toMatch(/LOSS\s+ε \(δ\)\s+SHA-256/);
    expect(human[1]).toContain(`${v[0]!.privacy!.epsilon.toFixed(2)} (δ=0.00001)`);
    const show = await fedge(['tasks', 'show', id]);
    expect(show.stdout).toMatch(new RegExp(`privacy spent: +ε = ${v[0]!.privacy!.epsilon.toFixed(3)} at δ = 0.00001 after 1 round\\(s\\) of a budget of 50`));
  });

  it("refuses --privacy that is not JSON, and passes the server's invalid_privacy on", async () => {
    const notJson = await fedge(['tasks', 'create', '--model', modelDir, '--name', 'x', '--privacy', '{mode:central}']);
    expect(notJson).toMatchObject({ code: EXIT.usage });
    expect(notJson.stderr).toMatch(/\[invalid_argument\]: --privacy must be a JSON object/);
    const bad = await fedge(['tasks', 'create', '--model', modelDir, '--name', 'x', '--privacy', '{"mode":"central","noiseMultiplier":1,"clipNorm":1}']);
    expect(bad.code).toBe(EXIT.refused);
    expect(bad.stderr).toMatch(/^fedge: error \[invalid_privacy\] \(HTTP 400\).*samplingRate/);
  });
});

describe('scale-out options from the command line', () => {
  it('creates a sharded, compressed task (--shards, --encoding), and passes invalid_sharding on', async () => {
    const created = await json(['tasks', 'create', '--model', modelDir, '--name', 's', '--clients-per-round', '8', '--shards', '2', '--encoding', 'int8']);
    expect(await json(['tasks', 'show', created.id as string])).toMatchObject({ shards: 2, updateEncoding: 'int8' });
    const usage = await fedge(['tasks', 'create', '--model', modelDir, '--name', 'x', '--shards', 'two']);
    expect(usage).toMatchObject({ code: EXIT.usage });
    expect(usage.stderr).toMatch(/\[invalid_argument\]: --shards must be a positive integer or auto/);
    const refused = await fedge(['tasks', 'create', '--model', modelDir, '--name', 'x', '--strategy', 'median', '--shards', '2']);
    expect(refused.code).toBe(EXIT.refused);
    expect(refused.stderr).toMatch(/^fedge: error \[invalid_sharding\] \(HTTP 400\).*shards must be 1/);
  });
});

describe('errors: a stable code on stderr and an exit code that says what went wrong', () => {
  it('usage: unknown command, bad option values', async () => {
    const unknown = await fedge(['tasks', 'frobnicate']);
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    const badLimit = await fedge(['tasks', 'ls', '--limit', '0']);
    expect(badLimit.code).toBe(EXIT.usage);
    expect(badLimit.stderr).toMatch(/--limit must be an integer ≥ 1/);
    const sp = await fedge(['tasks', 'create', '--model', modelDir, '--name', 'x', '--strategy', 'fedavgm', '--sp', 'nokey']);
    expect(sp).toMatchObject({ code: EXIT.usage, stderr: 'fedge: error [invalid_argument]: --sp nokey: expected key=value\n' });
  });

  it('refused input: a missing model file, a strategy the server does not know', async () => {
    const missing = await fedge(['tasks', 'create', '--model', join(work, 'nope', 'model.json'), '--name', 'x']);
    expect(missing.code).toBe(EXIT.refused);
    expect(missing.stderr).toMatch(/^fedge: error \[invalid_model_file\]: .*nope\/model\.json: no such file/);
    writeFileSync(join(work, 'bad.json'), '{"format": "layers-model"}');
    expect((await fedge(['tasks', 'create', '--model', join(work, 'bad.json'), '--name', 'x'])).stderr).toMatch(
      /\[invalid_model_file\].*needs modelTopology and weightsManifest/,
    );
    const strategy = await fedge(['tasks', 'create', '--model', modelDir, '--name', 'x', '--strategy', 'bogus']);
    expect(strategy.code).toBe(EXIT.refused);
    expect(strategy.stderr).toMatch(/^fedge: error \[invalid_strategy\] \(HTTP 400\)/);
  });

  it('auth: no token anywhere, a wrong token', async () => {
    const none = await fedge(['tasks', 'ls'], { env: { ...baseEnv, FEDGE_URL: url } });
    expect(none.code).toBe(EXIT.auth);
    expect(none.stderr).toMatch(/\[missing_token\] no admin token|\[missing_token\]: no admin token/);
    const wrong = await fedge(['tasks', 'ls', '--json'], { env: { ...env, FEDGE_ADMIN_TOKEN: 'not-the-token' } });
    expect(wrong.code).toBe(EXIT.auth);
    expect(JSON.parse(wrong.stderr).error).toMatchObject({ code: 'unauthorized', status: 401 });
  });

  it('unavailable: nothing listens at the URL', async () => {
    const r = await fedge(['tasks', 'ls', '--url', 'http://127.0.0.1:9', '--timeout', '5'], { env: { ...baseEnv, FEDGE_ADMIN_TOKEN: 'x' } });
    expect(r.code).toBe(EXIT.unavailable);
    expect(r.stderr).toMatch(/\[connection_failed\]/);
  });
});

describe('login profiles', () => {
  it('saves a checked token (file mode 0600) and uses it for its own URL only', async () => {
    const refused = await fedge(['login', '--url', url, '--profile', 'local'], { env: baseEnv, input: 'wrong-token\n' });
    expect(refused.code).toBe(EXIT.auth);
    const configFile = join(work, 'config', 'fedge', 'config.json');
    expect(() => statSync(configFile)).toThrow();

    const ok = await fedge(['login', '--url', url, '--profile', 'local'], { env: baseEnv, input: `${adminToken}\n` });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ profiles: { local: { url, token: adminToken } } });

    const who = await fedge(['whoami', '--profile', 'local', '--json'], { env: baseEnv });
    expect(JSON.parse(who.stdout)).toEqual({ url, tokenSource: 'config' });
    // Another URL with that profile: its token is not sent there.
    const elsewhere = await fedge(['whoami', '--profile', 'local', '--url', 'http://127.0.0.1:9'], { env: baseEnv });
    expect(elsewhere.code).toBe(EXIT.auth);
    expect(elsewhere.stderr).toMatch(/\[missing_token\]/);
    const unknown = await fedge(['whoami', '--profile', 'nope'], { env: baseEnv });
    expect(unknown).toMatchObject({ code: EXIT.usage });
    expect(unknown.stderr).toMatch(/no profile "nope"/);
  });
});
