#!/usr/bin/env node
// @ts-check
/**
 * `npm start`: runs the fedge aggregation service locally, the one command after `npm ci`.
 *
 * - state (D1, R2, Durable Objects) in `.fedge-state/` (override: FEDGE_STATE_DIR), kept across restarts;
 * - the admin token in `.dev.vars` (gitignored), generated on first start;
 * - D1 migrations applied before serving;
 * - `wrangler dev` on 127.0.0.1:8787 (override: FEDGE_PORT), offline (no telemetry, no cf fetch).
 *
 * Ctrl-C (or SIGTERM) stops wrangler and its workerd processes.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { DEFAULT_PORT, DEFAULT_STATE_DIR, ensureAdminToken, offlineEnv, REPO_ROOT, startLocalServer } from './lib/local-server.mjs';

Object.assign(process.env, offlineEnv());

const stateDir = process.env.FEDGE_STATE_DIR ? resolve(process.env.FEDGE_STATE_DIR) : DEFAULT_STATE_DIR;
const port = parsePort(process.env.FEDGE_PORT);
const shownState = `${displayPath(stateDir)}/`;

const bold = (/** @type {string} */ s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[22m` : s);
const say = (/** @type {string} */ s) => process.stdout.write(`[fedge] ${s}\n`);

const { token, created, path: devVars } = ensureAdminToken();
say(
  created
    ? `generated an admin token and saved it to ${displayPath(devVars)} (gitignored; never commit it)`
    : `using the admin token in ${displayPath(devVars)}`,
);
say(`state folder: ${shownState} — applying D1 migrations, then starting wrangler dev on 127.0.0.1:${port} …`);

/** @type {import('./lib/local-server.mjs').LocalServer | undefined} */
let server;
let firstSignalAt = 0;
let shuttingDown = false;

/** @param {NodeJS.Signals | 'parent-exit'} signal */
function onSignal(signal) {
  const now = Date.now();
  if (shuttingDown) {
    // npm forwards the terminal's Ctrl-C too, so one keypress can arrive twice: only a later Ctrl-C forces.
    if ((signal === 'SIGINT' || signal === 'SIGTERM') && now - firstSignalAt > 1_500) {
      say('forcing exit');
      process.exit(130); // the exit hook in local-server.mjs SIGKILLs wrangler's process group
    }
    return;
  }
  shuttingDown = true;
  firstSignalAt = now;
  say(`${signal === 'parent-exit' ? 'npm exited' : signal}: stopping wrangler …`);
  const stopping = server ? server.stop() : Promise.resolve();
  stopping.then(
    () => {
      say(`stopped. State kept in ${shownState}`);
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
// A closed terminal must not crash us mid-shutdown (EPIPE/EIO on write): wrangler still gets stopped cleanly.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
for (const sig of /** @type {NodeJS.Signals[]} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) process.on(sig, onSignal);
// `kill <npm's pid>` ends npm and its `sh -c` without passing the signal on to us: under npm, stop when orphaned.
if (process.env.npm_lifecycle_event) {
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && onSignal('parent-exit'), 500).unref();
}

try {
  server = await startLocalServer({ port, stateDir });
} catch (e) {
  if (shuttingDown) process.exit(0); // interrupted while starting; startLocalServer already cleaned up
  console.error(`\n[fedge] could not start: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
if (shuttingDown) {
  await server.stop(); // a signal arrived before the server handle existed
  process.exit(0);
}

const { url } = server;
const line = '─'.repeat(72);
process.stdout.write(
  [
    '',
    line,
    ` ${bold('fedge aggregator is running')} (ready in ${(server.startupMs / 1000).toFixed(1)} s)`,
    '',
    `   Dashboard    ${url}/dashboard/`,
    `   API          ${url}/v1`,
    `   API docs     ${url}/docs (OpenAPI: ${url}/openapi.json)`,
    `   Admin token  ${token}`,
    `                (in ${displayPath(devVars)}; operator routes need "Authorization: Bearer <token>")`,
    `   State        ${shownState} (tasks, rounds and model versions survive restarts)`,
    '',
    ' List tasks (the token is read from the file, so it is shown once, above):',
    `   curl -s -H "Authorization: Bearer $(sed -n 's/^ADMIN_TOKEN=//p' ${displayPath(devVars)})" ${url}/v1/tasks`,
    '',
    ' Create a task, register clients, run a round: README.md, "Five-minute walk-through".',
    ' Stop with Ctrl-C. To start from scratch, stop and delete the state folder.',
    line,
    '',
  ].join('\n'),
);

const code = await server.exited;
if (!shuttingDown) {
  say(`wrangler exited unexpectedly (code ${code})`);
  process.exit(code || 1);
}

/** @param {string | undefined} raw */
function parsePort(raw) {
  if (raw === undefined || raw === '') return DEFAULT_PORT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65_535) {
    console.error(`[fedge] FEDGE_PORT must be a port number (1-65535), got "${raw}"`);
    process.exit(2);
  }
  return n;
}

/**
 * A path relative to the repo root when it lies inside it.
 * @param {string} p
 */
function displayPath(p) {
  const rel = relative(REPO_ROOT, p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}
