/**
 * `npm run simulate` as a user runs it (a child process of test/sim/cli.ts) against the suite's
 * platform: with no `--fraction`, every client trains each round (Flower's default), the platform
 * is found through `FEDGE_PORT`, and the user's own saved model trains on their own data module.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { saveArgmaxModel } from '../sim/saved-model.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';

const url = inject('fedgeUrl');
const out = mkdtempSync(join(tmpdir(), 'fedge-sim-cli-'));
const modelDir = join(out, 'saved-model');
const env = () => ({ FEDGE_PORT: new URL(url).port, FEDGE_ADMIN_TOKEN: inject('fedgeAdminToken') });
beforeAll(async () => {
  await useWasmBackend();
  await saveArgmaxModel(modelDir);
});
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
    const r = await simulate(['--clients', '4', '--rounds', '1', '--model', 'mlp', '--out', out, '--name', 'defaults'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`aggregator http://127.0.0.1:${port}\n`);
    expect(r.stdout).toContain('4 of 4 clients per round (--fraction 1)');
    const row = r.stdout.split('\n').find((l) => /^\s+1\s+0\.\d{4}/.test(l))!;
    expect(row.trim().split(/\s+/)[3]).toBe('4'); // the round's clients column
    expect(readdirSync(out).filter((f) => f.startsWith('defaults'))).toEqual(['defaults.csv', 'defaults.svg']);
  }, 120_000);

  it('trains the user’s saved model (model.json) on the user’s data module, and evaluates it on their held-out set', async () => {
    const data = join(import.meta.dirname, '..', 'sim', 'examples', 'argmax-data.mjs');
    const r = await simulate(
      ['--model', join(modelDir, 'model.json'), '--data', data, '--rounds', '3', '--epochs', '5', '--out', out, '--name', 'user'],
      env(),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('6 of 6 clients per round (--fraction 1)'); // the module's 6 clients
    const rows = r.stdout
      .split('\n')
      .filter((l) => /^\s+\d+\s+0\.\d{4}/.test(l))
      .map((l) => l.trim().split(/\s+/));
    expect(rows.map((c) => [c[0], c[3], c[4]])).toEqual([
      ['1', '6', '390'],
      ['2', '6', '390'],
      ['3', '6', '390'],
    ]); // 40 + 50 + … + 90 examples
    // The saved SGD(0.2) trains it well past chance (1/3) on 500 held-out examples.
    expect(Number(rows[2]![1])).toBeGreaterThan(0.6);
    expect(r.stdout).toMatch(/best accuracy 0\.\d{4}/);
  }, 120_000);

  it('says what is wrong with a saved model without data, a built-in model with data, and a bad data module', async () => {
    const noData = await simulate(['--model', join(modelDir, 'model.json')], env());
    expect([noData.code, noData.stderr.split('\n')[0]]).toEqual([
      2,
      `simulate: --model ${join(modelDir, 'model.json')} is a saved model: give its clients' data with --data MODULE`,
    ]);
    const builtIn = await simulate(['--model', 'mlp', '--data', 'x.mjs'], env());
    expect(builtIn.stderr.split('\n')[0]).toBe('simulate: --data is for a saved model (--model PATH); mlp trains on MNIST');
    const bad = join(out, 'bad.mjs');
    writeFileSync(bad, 'export default () => ({ clients: [{ xs: [[1, 2], [3]], ys: [[1], [0]] }] });\n');
    const ragged = await simulate(['--model', join(modelDir, 'model.json'), '--data', bad], env());
    expect(ragged.code).toBe(2);
    expect(ragged.stderr.split('\n')[0]).toMatch(/^simulate: --data .*bad\.mjs: clients\[0\]\.xs: not a rectangular array of numbers/);
    const missing = await simulate(['--model', join(out, 'nope.json'), '--data', bad], env());
    expect(missing.stderr.split('\n')[0]).toBe(
      `simulate: --model ${join(out, 'nope.json')} is neither mlp, 2nn, cnn nor a saved model (no such file or folder)`,
    );
  }, 60_000);

  it('refuses a FEDGE_PORT that is not a port', async () => {
    const r = await simulate(['--clients', '2', '--rounds', '1'], { FEDGE_PORT: 'eighty' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('FEDGE_PORT must be a port number (1-65535), got "eighty"');
  });
});
