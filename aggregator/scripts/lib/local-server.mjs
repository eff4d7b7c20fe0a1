// @ts-check
/**
 * @module Start the fedge aggregator locally: the real `wrangler dev` (Worker + Durable Objects +
 * D1 + R2 simulated on disk), with D1 migrations applied first, and wait until `/v1/health`
 * answers. Used by `npm start` (aggregator/scripts/start.mjs), the restart test and benchmarks.
 *
 * Plain ESM JavaScript (run directly by `node`); types in local-server.d.mts.
 *
 * ```js
 * import { startLocalServer, findFreePort } from './aggregator/scripts/lib/local-server.mjs';
 * const server = await startLocalServer({ port: await findFreePort(), stateDir: '/tmp/fedge-x', adminToken: 'secret' });
 * await fetch(`${server.url}/v1/tasks`, { headers: { authorization: `Bearer ${server.adminToken}` } });
 * await server.stop();
 * ```
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';

/** The repository root (where wrangler.jsonc lives). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Default local state folder (D1, R2, Durable Objects), gitignored. */
export const DEFAULT_STATE_DIR = join(REPO_ROOT, '.fedge-state');

export const DEFAULT_PORT = 8787;

const MIN_NODE_MAJOR = 22; // wrangler 4 refuses older Node.js
const IS_WINDOWS = process.platform === 'win32';

/**
 * Environment for every wrangler child: no telemetry, no network look-ups of request.cf data,
 * no banner. Callers may add to it.
 * @returns {Record<string, string>}
 */
export function offlineEnv() {
  return { WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_HIDE_BANNER: 'true' };
}

/** A new random admin token (32 random bytes, base64url). */
export function generateAdminToken() {
  return randomBytes(32).toString('base64url');
}

/**
 * Reads ADMIN_TOKEN from a `.dev.vars` file (what `wrangler dev` reads), creating the file or
 * adding the line with a fresh token when it is missing or empty. Other lines are kept.
 * @param {string} [devVarsPath] default `<repo>/.dev.vars`
 * @returns {{ token: string, created: boolean, path: string }}
 */
export function ensureAdminToken(devVarsPath = join(REPO_ROOT, '.dev.vars')) {
  const existing = existsSync(devVarsPath) ? readFileSync(devVarsPath, 'utf8') : '';
  const current = existing ? parseEnv(existing).ADMIN_TOKEN : undefined;
  if (current) return { token: current, created: false, path: devVarsPath };
  const token = generateAdminToken();
  const kept = existing
    .split(/\r?\n/)
    .filter((line) => !/^\s*(export\s+)?ADMIN_TOKEN\s*=/.test(line))
    .join('\n')
    .trimEnd();
  const header = kept ? `${kept}\n` : '# Local secrets for `wrangler dev` / `npm start`. Gitignored: never commit this file.\n';
  writeFileSync(devVarsPath, `${header}ADMIN_TOKEN=${token}\n`, { mode: 0o600 });
  return { token, created: true, path: devVarsPath };
}

/**
 * A TCP port that was free a moment ago (the OS picks it).
 * @param {string} [host]
 * @returns {Promise<number>}
 */
export function findFreePort(host = '127.0.0.1') {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * @param {number} port
 * @param {string} host
 * @returns {Promise<boolean>}
 */
function isPortFree(port, host) {
  return new Promise((resolveFree) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolveFree(false));
    srv.listen(port, host, () => srv.close(() => resolveFree(true)));
  });
}

/** A Node.js ≥ 22 binary: this one, or the repo's `node` devDependency. */
function nodeBinary() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= MIN_NODE_MAJOR) return process.execPath;
  const local = join(REPO_ROOT, 'node_modules', 'node', 'bin', IS_WINDOWS ? 'node.exe' : 'node');
  if (existsSync(local)) return local;
  throw new Error(
    `wrangler needs Node.js >= ${MIN_NODE_MAJOR} (this is ${process.version}); run through npm (\`npm start\`) so the repo's node devDependency is used, or run \`npm ci\` first`,
  );
}

function wranglerBin() {
  const require = createRequire(join(REPO_ROOT, 'package.json'));
  /** @type {{ bin: string | Record<string, string> }} */
  const pkg = require('wrangler/package.json');
  const bin = typeof pkg.bin === 'string' ? pkg.bin : (pkg.bin.wrangler ?? Object.values(pkg.bin)[0]);
  if (!bin) throw new Error('cannot find the wrangler binary; run `npm ci`');
  return join(dirname(require.resolve('wrangler/package.json')), bin);
}

/**
 * @typedef {(text: string, stream: 'stdout' | 'stderr') => void} OutputSink
 */

/** @type {OutputSink} */
const forwardOutput = (text, stream) => {
  (stream === 'stderr' ? process.stderr : process.stdout).write(text);
};

/**
 * The environment of a wrangler child. ADMIN_TOKEN is removed so the only source of the secret
 * is the file we chose (wrangler also reads process.env for required secrets without .dev.vars).
 * @param {Record<string, string>} [extra]
 */
function childEnv(extra = {}) {
  /** @type {Record<string, string | undefined>} */
  const env = { ...process.env, ...offlineEnv(), ...extra };
  delete env.ADMIN_TOKEN;
  if (process.stdout.isTTY && env.FORCE_COLOR === undefined && env.NO_COLOR === undefined) env.FORCE_COLOR = '1';
  return env;
}

/**
 * Forwards a child's output to `onOutput` and keeps its last 4,000 characters for error messages.
 * @param {{ stdout: import('node:stream').Readable, stderr: import('node:stream').Readable }} child
 * @param {(text: string, stream: 'stdout' | 'stderr') => void} onOutput
 * @returns {() => string} the captured tail so far
 */
function captureOutput(child, onOutput) {
  let tail = '';
  /** @param {'stdout' | 'stderr'} stream */
  const sink = (stream) => (/** @type {Buffer} */ chunk) => {
    const text = chunk.toString('utf8');
    tail = (tail + text).slice(-4000);
    onOutput(text, stream);
  };
  child.stdout.on('data', sink('stdout'));
  child.stderr.on('data', sink('stderr'));
  return () => tail;
}

/**
 * Runs one wrangler command to completion (stdin closed, so it never prompts).
 * @param {string[]} args
 * @param {{ cwd?: string, onOutput?: OutputSink, env?: Record<string, string> }} [opts]
 * @returns {Promise<void>}
 */
export function runWrangler(args, opts = {}) {
  const onOutput = opts.onOutput ?? forwardOutput;
  return new Promise((resolveRun, reject) => {
    const child = spawn(nodeBinary(), [wranglerBin(), ...args], { cwd: opts.cwd ?? REPO_ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
    const tail = captureOutput(child, onOutput);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolveRun();
      else reject(new Error(`wrangler ${args.slice(0, 3).join(' ')} failed (${signal ?? `exit ${code}`}):\n${tail()}`));
    });
  });
}

/**
 * Applies the D1 migrations in migrations/ to the local database in `stateDir`. Without a TTY
 * (and with CI=true) wrangler takes the default "yes" instead of asking for confirmation.
 * @param {{ stateDir?: string, cwd?: string, onOutput?: OutputSink }} [opts]
 */
export async function applyMigrations(opts = {}) {
  const stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  await mkdir(stateDir, { recursive: true });
  /** @type {{ cwd?: string, onOutput?: OutputSink, env: Record<string, string> }} */
  const runOpts = { env: { CI: 'true' } };
  if (opts.cwd !== undefined) runOpts.cwd = opts.cwd;
  if (opts.onOutput !== undefined) runOpts.onOutput = opts.onOutput;
  await runWrangler(['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', stateDir], runOpts);
}

/**
 * Polls `GET <url>/v1/health` until it answers 200.
 * @param {string} url base URL, e.g. http://127.0.0.1:8787
 * @param {{ timeoutMs?: number, intervalMs?: number, signal?: AbortSignal, isAlive?: () => boolean }} [opts]
 */
export async function waitForHealth(url, opts = {}) {
  const { timeoutMs = 120_000, intervalMs = 200, signal, isAlive = () => true } = opts;
  const deadline = Date.now() + timeoutMs;
  /** @type {unknown} */
  let last;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (!isAlive()) throw new Error('the server exited before it became healthy');
    try {
      const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${url}/v1/health did not answer 200 within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : String(last)})`);
}

/** Process groups started here and not yet stopped; killed if this process exits first. */
/** @type {Set<number>} */
const liveGroups = new Set();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pid of liveGroups) killTree(pid, 'SIGKILL');
  });
}

/**
 * @param {number} pid
 * @param {NodeJS.Signals} signal
 */
function killTree(pid, signal) {
  try {
    if (IS_WINDOWS) process.kill(pid, signal);
    else process.kill(-pid, signal); // the whole process group: wrangler, its node child, workerd, esbuild
  } catch {
    // already gone
  }
}

/**
 * Whether any process of the group led by `pgid` is still running. Zombies do not count: when
 * wrangler exits, its workerd children are reparented to init, which may reap them only later.
 * On Linux this reads /proc; elsewhere it asks the kernel (zombies then count as alive).
 * @param {number} pgid
 * @returns {boolean}
 */
export function processGroupAlive(pgid) {
  if (IS_WINDOWS) {
    try {
      process.kill(pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  try {
    process.kill(-pgid, 0);
  } catch {
    return false; // no process at all in the group
  }
  if (process.platform !== 'linux') return true;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/**
 * @typedef {object} LocalServerOptions
 * @property {number} [port] default 8787
 * @property {string} [ip] default 127.0.0.1
 * @property {string} [stateDir] folder for D1, R2 and Durable Object data (`--persist-to`); default `<repo>/.fedge-state`
 * @property {string} [adminToken] the ADMIN_TOKEN secret; given, it is passed through a private temporary env file
 *   (the repo's .dev.vars is then not read); omitted, the token in `<repo>/.dev.vars` is used (generated on first use)
 * @property {boolean} [migrate] apply D1 migrations before serving; default true
 * @property {OutputSink} [onOutput] receives wrangler's output; default: forwarded to this process's stdout/stderr
 * @property {number} [readyTimeoutMs] default 120000
 * @property {string[]} [extraArgs] more `wrangler dev` flags
 * @property {Record<string, string>} [env] more environment for the wrangler children
 *
 * @typedef {object} LocalServer
 * @property {string} url e.g. http://127.0.0.1:8787 (the API is under /v1)
 * @property {number} port
 * @property {string} stateDir absolute
 * @property {string} adminToken
 * @property {number} pid wrangler's process id (leader of its process group on POSIX)
 * @property {number} startupMs from the call to healthy, migrations included
 * @property {Promise<number | null>} exited resolves with wrangler's exit code when it ends, for any reason
 * @property {() => Promise<void>} stop SIGTERM to wrangler, wait for a clean exit (workerd included), SIGKILL the group after 10 s; idempotent
 */

/**
 * Starts a local aggregator (`wrangler dev`) and resolves once `/v1/health` answers 200.
 * If startup fails, everything started is stopped before the promise rejects.
 * @param {LocalServerOptions} [opts]
 * @returns {Promise<LocalServer>}
 */
export async function startLocalServer(opts = {}) {
  const t0 = performance.now();
  const port = opts.port ?? DEFAULT_PORT;
  const ip = opts.ip ?? '127.0.0.1';
  const stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  const onOutput = opts.onOutput ?? forwardOutput;
  const url = `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;

  // Otherwise a server already on the port (a forgotten `npm start`) would answer our health check.
  if (!(await isPortFree(port, ip)))
    throw new Error(`port ${port} on ${ip} is already in use (another fedge/wrangler dev running?); pick another port (FEDGE_PORT)`);

  await mkdir(stateDir, { recursive: true });
  if (opts.migrate ?? true) await applyMigrations({ stateDir, onOutput });

  /** @type {string} */
  let adminToken;
  /** @type {string[]} */
  const secretArgs = [];
  /** @type {string | undefined} */
  let secretDir;
  if (opts.adminToken !== undefined) {
    if (!opts.adminToken) throw new Error('adminToken must not be empty');
    // Written unquoted to a dotenv file that wrangler also `$VAR`-expands: keep to token characters.
    if (!/^[A-Za-z0-9._~+/=-]+$/.test(opts.adminToken)) throw new Error('adminToken may only hold A-Z a-z 0-9 . _ ~ + / = -');
    adminToken = opts.adminToken;
    secretDir = mkdtempSync(join(tmpdir(), 'fedge-secrets-'));
    const envFile = join(secretDir, 'admin.env');
    writeFileSync(envFile, `ADMIN_TOKEN=${adminToken}\n`, { mode: 0o600 });
    secretArgs.push('--env-file', envFile);
  } else {
    adminToken = ensureAdminToken(join(REPO_ROOT, '.dev.vars')).token;
  }
  const cleanupSecrets = () => {
    if (secretDir) rmSync(secretDir, { recursive: true, force: true });
    secretDir = undefined;
  };

  const args = [
    wranglerBin(),
    'dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--persist-to',
    stateDir,
    '--show-interactive-dev-session=false',
    ...secretArgs,
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(nodeBinary(), args, {
    cwd: REPO_ROOT,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: !IS_WINDOWS, // own process group: signals from the terminal reach us only, and stop() can reap the whole tree
  });
  const pid = child.pid;
  if (pid === undefined) {
    cleanupSecrets();
    throw new Error('could not spawn wrangler');
  }
  liveGroups.add(pid);
  installExitHook();

  let alive = true;
  const tail = captureOutput(child, onOutput);
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolveExit) => {
    child.once('error', () => {
      alive = false;
      resolveExit(null);
    });
    child.once('exit', (code) => {
      alive = false;
      resolveExit(code);
    });
  }).then(async (code) => {
    // Anything left in the group (there should be nothing after a clean exit) goes too.
    for (let i = 0; i < 20 && processGroupAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (processGroupAlive(pid)) killTree(pid, 'SIGKILL');
    for (let i = 0; i < 20 && processGroupAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    liveGroups.delete(pid);
    cleanupSecrets();
    return code;
  });

  /** @type {Promise<void> | undefined} */
  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      if (alive) {
        // wrangler's launcher forwards SIGTERM to wrangler, which disposes workerd and exits.
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
        const timer = new Promise((r) => setTimeout(r, 10_000, 'timeout'));
        if ((await Promise.race([exited, timer])) === 'timeout') killTree(pid, 'SIGKILL');
      }
      await exited;
    })();
    return stopping;
  };

  try {
    await waitForHealth(url, { timeoutMs: opts.readyTimeoutMs ?? 120_000, isAlive: () => alive });
  } catch (e) {
    await stop();
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- wrangler output (tail) ---\n${tail()}`, { cause: e });
  }

  return { url, port, stateDir, adminToken, pid, startupMs: Math.round(performance.now() - t0), exited, stop };
}
