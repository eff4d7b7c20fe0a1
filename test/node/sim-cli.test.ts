/**
 * `npm run simulate` as a user runs it (a child process of test/sim/cli.ts) against the suite's
 * platform: with no `--fraction`, every client trains each round (Flower's default), and the
 * platform is found through `FEDGE_PORT`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';

const url = inject('fedgeUrl');
const out = mkdtempSync(join(tmpdir(), 'fedge-sim-cli-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function simulate(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(import.meta.dirname, '..', 'sim', 'cli.ts'), ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

describe('npm run simulate', () => {
  it('trains every client by default and finds the platform on FEDGE_PORT', async () => {
    const port = new URL(url).port;
    const r = await simulate(['--clients', '4', '--rounds', '1', '--model', 'mlp', '--out', out, '--name', 'defaults'], {
      FEDGE_PORT: port,
      FEDGE_ADMIN_TOKEN: inject('fedgeAdminToken'),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`aggregator http://127.0.0.1:${port}\n`);
    expect(r.stdout).toContain('4 of 4 clients per round (--fraction 1)');
    const row = r.stdout.split('\n').find((l) => /^\s+1\s+0\.\d{4}/.test(l))!;
    expect(row.trim().split(/\s+/)[3]).toBe('4'); // the round's clients column
    expect(readdirSync(out).sort()).toEqual(['defaults.csv', 'defaults.svg']);
  }, 120_000);

  it('refuses a FEDGE_PORT that is not a port', async () => {
    const r = await simulate(['--clients', '2', '--rounds', '1'], { FEDGE_PORT: 'eighty' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('FEDGE_PORT must be a port number (1-65535), got "eighty"');
  });
});
