/**
 * `npm start` itself (aggregator/scripts/start.mjs), as a newcomer runs it: it comes up, answers,
 * and shows the admin token once (it used to print it twice: in the banner and in a curl line).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { findFreePort } from '../../aggregator/scripts/lib/local-server.mjs';

it('starts the platform, prints where it listens, and shows the admin token exactly once', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'fedge-start-'));
  const port = await findFreePort();
  const child = spawn(process.execPath, ['aggregator/scripts/start.mjs'], {
    env: { ...process.env, FEDGE_STATE_DIR: stateDir, FEDGE_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  try {
    for (let i = 0; i < 600 && !out.includes('Stop with Ctrl-C'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain(`http://127.0.0.1:${port}/v1`);
    const token = readFileSync('.dev.vars', 'utf8').match(/^ADMIN_TOKEN=(.+)$/m)![1]!;
    expect(out.split(token).length - 1).toBe(1);
    const res = await fetch(`http://127.0.0.1:${port}/v1/tasks`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(stateDir, { recursive: true, force: true });
  }
}, 90_000);
