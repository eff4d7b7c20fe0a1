/**
 * @module Where the local runtime's memory creep comes from: workerd's RSS under `wrangler dev`,
 * sampled every `--step` requests, for a hello-world Worker and for fedge's own `/v1/health`
 * (no storage touched), in one run.
 *
 *   npm run bench:rss-baseline -- [--requests 40000] [--step 4000]
 *
 * If both grow alike, the per-request growth that `npm run bench:ingest` shows is the local
 * runtime's, not fedge's state.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, offlineEnv, REPO_ROOT, startLocalServer, waitForHealth } from '../../aggregator/scripts/lib/local-server.mjs';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '40000' }, step: { type: 'string', default: '4000' } } });
const REQUESTS = Number(values.requests);
const STEP = Number(values.step);
const CONCURRENCY = 25;

/** Anonymous RSS (MiB) of the workerd processes in process group `pgid`. */
function anonMiB(pgid: number): number {
  let kib = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workerd')) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      kib += Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/RssAnon:\s+(\d+) kB/)?.[1] ?? 0);
    } catch {
      /* process ended */
    }
  }
  return Math.round(kib / 1024);
}

async function series(url: string, pgid: number): Promise<number[]> {
  const out = [anonMiB(pgid)];
  for (let done = 0; done < REQUESTS; ) {
    for (const end = done + STEP; done < end; done += CONCURRENCY)
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => (await fetch(url)).arrayBuffer()));
    out.push(anonMiB(pgid));
  }
  return out;
}

// A hello-world Worker, run by the same wrangler and workerd as fedge.
const dir = mkdtempSync(join(tmpdir(), 'fedge-hello-'));
writeFileSync(
  join(dir, 'worker.js'),
  `export default { fetch() { return new Response('{"ok":true}', { headers: { 'content-type': 'application/json' } }); } };\n`,
);
writeFileSync(join(dir, 'wrangler.jsonc'), JSON.stringify({ name: 'hello', main: 'worker.js', compatibility_date: '2026-11-01' }));
const port = await findFreePort();
const hello = spawn(
  process.execPath,
  [join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'dev', '--ip', '127.0.0.1', '--port', String(port), '--show-interactive-dev-session=false'],
  {
    cwd: dir,
    env: { ...process.env, ...offlineEnv() },
    stdio: 'ignore',
    detached: true,
  },
);
try {
  await waitForHealth(`http://127.0.0.1:${port}`); // the hello Worker answers 200 on every path, /v1/health too
  const helloSeries = await series(`http://127.0.0.1:${port}/`, hello.pid!);
  console.log(JSON.stringify({ name: 'hello-world worker', requests: REQUESTS, step: STEP, anonRssMiB: helloSeries }));
} finally {
  process.kill(-hello.pid!, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

const stateDir = mkdtempSync(join(tmpdir(), 'fedge-rss-'));
const server = await startLocalServer({ port: await findFreePort(), stateDir, adminToken: 'rss-baseline', onOutput: () => {} });
try {
  const fedgeSeries = await series(`${server.url}/v1/health`, server.pid);
  console.log(JSON.stringify({ name: 'fedge /v1/health', requests: REQUESTS, step: STEP, anonRssMiB: fedgeSeries }));
} finally {
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
