/**
 * The SDK as an app installs it: built (tsdown), packed (`npm pack`), installed into a fresh app
 * outside the repository, then used the three ways an app ships it:
 * - the app's own `tsc` (the settings `tsc --init` writes: strict, `module: nodenext`) type-checks
 *   its use of the public API;
 * - Node runs a round with it against the real aggregator (test/node/global-setup.ts);
 * - a browser bundle made from the installed package runs a round in headless Chromium;
 * - a React Native-like runtime (a context holding React Native's globals only: no Node
 *   built-ins, no DOM, no `crypto.subtle`, no `TextDecoder`, no WebAssembly, an AbortSignal
 *   without `timeout`/`any`) gets a coded error for each missing polyfill, and runs a round once
 *   the documented polyfills are in.
 * The app's code is test/package/app/ (one module, app.ts, used by all three).
 */
import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createContext, runInContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FedgeAdmin } from '../../client-sdk/src/index.ts';
import { launchChromium, serveStatic } from '../browser/chromium.ts';
import { argmaxTask } from '../sim/synthetic.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '..', '..');
const SDK = join(REPO, 'client-sdk');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const TFJS_VERSION = JSON.parse(readFileSync(join(REPO, 'node_modules/@tensorflow/tfjs/package.json'), 'utf8')).version as string;

const fedgeUrl = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: fedgeUrl, token: inject('fedgeAdminToken') });

const work = mkdtempSync(join(tmpdir(), 'fedge-package-'));
const app = join(work, 'app');
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };
let installed: { tscOutput: string; tscExit: number };
let server: Server | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  await useWasmBackend(); // Node side: only to build the tasks' model
  // Build and pack exactly what `npm publish` would send.
  await run(join(REPO, 'node_modules', '.bin', 'tsdown'), [], { cwd: SDK });
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: SDK });
  [packed] = JSON.parse(stdout);
  // A fresh app outside the repository: its package.json, its code, the tarball and tfjs installed.
  mkdirSync(app);
  cpSync(join(REPO, 'test/package/app'), app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fedge-app', private: true, type: 'module' }, null, 2));
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(work, packed.filename), `@tensorflow/tfjs@${TFJS_VERSION}`],
    { cwd: app },
  );
  await run(process.execPath, [TSC, '--init'], { cwd: app });
  installed = await run(process.execPath, [TSC, '-p', '.'], { cwd: app }).then(
    (r) => ({ tscOutput: r.stdout + r.stderr, tscExit: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => ({ tscOutput: e.stdout + e.stderr, tscExit: e.code }),
  );
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  rmSync(work, { recursive: true, force: true });
});

async function newDevice(): Promise<{ baseUrl: string; taskId: string; token: string; numExamples: number; seed: number }> {
  const taskId = await argmaxTask(admin, 'package test', { plan: { epochs: 1, batchSize: 8, learningRate: 0.2 } });
  const { token } = await admin.registerClient(taskId, 'installed package');
  return { baseUrl: fedgeUrl, taskId, token, numExamples: 40, seed: 5 };
}

const accepted = (numExamples: number) => ({
  status: 'accepted',
  round: 1,
  seq: 1,
  numExamples,
  published: { version: 1, contentHash: expect.stringMatching(/^[0-9a-f]{64}$/) },
  tensorsLeft: 0,
});

describe('the SDK as an installed package (@fedge/client)', () => {
  it('packs the built SDK only: ESM, declarations, README, the CLI; no sources, tests or server', () => {
    const files = packed.files.map((f) => f.path).sort();
    expect(files).toEqual(['README.md', 'dist/cli.mjs', 'dist/cli.mjs.map', 'dist/index.d.ts', 'dist/index.js', 'dist/index.js.map', 'package.json']);
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/@fedge/client/package.json'), 'utf8'));
    expect(manifest).toMatchObject({ name: '@fedge/client', type: 'module', sideEffects: false, peerDependencies: { '@tensorflow/tfjs': '^4.22.0' } });
    // commander is the CLI's (the library never imports it); shamir-secret-sharing is secure aggregation's audited Shamir sharing.
    expect(manifest.dependencies).toEqual({ commander: expect.any(String), 'shamir-secret-sharing': expect.any(String) });
    const js = readFileSync(join(app, 'node_modules/@fedge/client/dist/index.js'), 'utf8');
    // Its only imports are tfjs (the peer dependency) and Shamir sharing; nothing of Node, nothing of the aggregator.
    expect([...js.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]).sort()).toEqual(['@tensorflow/tfjs', 'shamir-secret-sharing']);
    expect(js).not.toMatch(/\brequire\(|\bimport\(|from "node:/);
    console.log(`[package] ${packed.filename}: ${(packed.size / 1024).toFixed(1)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(1)} KiB installed`);
  });

  it("type-checks in the app's own tsc (tsc --init settings: strict, module nodenext)", () => {
    const config = readFileSync(join(app, 'tsconfig.json'), 'utf8');
    expect(config).toMatch(/"strict": true/);
    expect(config).toMatch(/"module": "nodenext"/);
    expect(installed.tscOutput).toBe('');
    expect(installed.tscExit).toBe(0);
  });

  it('documents every public export with a TSDoc example', () => {
    const dts = readFileSync(join(SDK, 'dist/index.d.ts'), 'utf8');
    const exportLists = [...dts.matchAll(/^export \{([^}]*)\};?$/gm)];
    const names = exportLists
      .at(-1)![1]!
      .split(',')
      .map((n) => n.trim().replace(/^type\s+/, ''))
      .filter(Boolean);
    expect(names.length).toBeGreaterThan(40);
    const missing = names.filter((name) => {
      const declaration = new RegExp(`^(?:declare )?(?:abstract )?(?:class|interface|type|function|const) ${name}\\b`, 'm').exec(dts);
      if (!declaration) return true;
      const before = dts.slice(0, declaration.index).trimEnd();
      if (!before.endsWith('*/')) return true;
      return !before.slice(before.lastIndexOf('/**')).includes('@example');
    });
    expect(missing).toEqual([]);
  });

  it('installs the `fedge` operator CLI as a bin that talks to the platform', async () => {
    const fedge = (args: string[]) =>
      run(join(app, 'node_modules', '.bin', 'fedge'), args, {
        cwd: app,
        env: { PATH: process.env.PATH, FEDGE_URL: fedgeUrl, FEDGE_ADMIN_TOKEN: inject('fedgeAdminToken'), HOME: work },
      });
    expect((await fedge(['--version'])).stdout.trim()).toBe(JSON.parse(readFileSync(join(SDK, 'package.json'), 'utf8')).version);
    const taskId = await argmaxTask(admin, 'package cli');
    const { stdout } = await fedge(['tasks', 'show', taskId, '--json']);
    expect(JSON.parse(stdout)).toMatchObject({ id: taskId, name: 'package cli', currentVersion: 0 });
  });

  it('runs a round in Node from the installed package', async () => {
    const device = await newDevice();
    const { stdout } = await run(process.execPath, ['run.mjs', JSON.stringify(device)], { cwd: app, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual(accepted(40));
    expect((await admin.getManifest(device.taskId, 'current')).version).toBe(1);
  }, 90_000);

  it('runs a round in headless Chromium from a browser bundle of the installed package', async () => {
    const www = join(work, 'www');
    const bundle = await build({
      entryPoints: [join(app, 'browser.ts')],
      absWorkingDir: app,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      outfile: join(www, 'browser.js'),
      metafile: true,
      logLevel: 'silent',
    });
    cpSync(join(app, 'page.html'), join(www, 'page.html'));
    // The SDK came from the installed package, not from the repository's sources.
    const inputs = Object.keys(bundle.metafile.inputs);
    expect(inputs).toContain('node_modules/@fedge/client/dist/index.js');
    expect(inputs.filter((p) => p.includes('client-sdk/src'))).toEqual([]);
    const served = await serveStatic(www);
    server = served.server;
    browser = await launchChromium();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${served.origin}/page.html`);
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 30_000 });
    const device = await newDevice();
    const outcome = await page.evaluate((c) => (window as unknown as { fedgeApp: { runRound(c: unknown): Promise<unknown> } }).fedgeApp.runRound(c), device);
    expect(outcome).toEqual(accepted(40));
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  describe('with React Native globals only', () => {
    let code: string;
    beforeAll(async () => {
      // As Metro bundles an app: one script, the packages' `browser` fields honoured.
      const out = await build({
        entryPoints: [join(app, 'react-native.ts')],
        absWorkingDir: app,
        bundle: true,
        format: 'iife',
        platform: 'browser',
        conditions: ['react-native'],
        target: 'es2022',
        write: false,
        logLevel: 'silent',
      });
      code = out.outputFiles[0]!.text;
    });

    /** A fresh runtime with React Native's globals (Hermes: no WebAssembly, no TextDecoder, no crypto.subtle), plus `polyfills`. */
    function reactNative(polyfills: Record<string, unknown> = {}) {
      // React Native's AbortSignal (the abort-controller polyfill) has `abort` but neither `timeout` nor `any`.
      const RNAbortSignal = function AbortSignal() {
        throw new TypeError('Illegal constructor');
      } as unknown as typeof AbortSignal;
      Object.assign(RNAbortSignal, { prototype: AbortSignal.prototype, abort: AbortSignal.abort.bind(AbortSignal) });
      const sandbox: Record<string, unknown> = {
        fetch,
        Headers,
        Request,
        Response,
        FormData,
        Blob,
        AbortController,
        AbortSignal: RNAbortSignal,
        TextEncoder,
        btoa,
        atob,
        setTimeout,
        clearTimeout,
        setInterval,
        clearInterval,
        setImmediate,
        clearImmediate,
        queueMicrotask,
        console,
        performance: { now: () => performance.now() },
        navigator: { product: 'ReactNative' },
        crypto: { getRandomValues: <T extends ArrayBufferView>(a: T) => webcrypto.getRandomValues(a as never) as T },
        ...polyfills,
      };
      const context = createContext(sandbox);
      runInContext('globalThis.global = globalThis; delete globalThis.WebAssembly;', context);
      for (const name of ['process', 'Buffer', 'require', 'window', 'document', 'TextDecoder', 'WebAssembly']) {
        if (!(name in polyfills)) expect(runInContext(`typeof ${name}`, context), name).toBe('undefined');
      }
      runInContext(code, context);
      return (sandbox as { fedgeApp: { runRound(c: unknown): Promise<unknown> } }).fedgeApp;
    }

    it('fails with a coded missing_platform_api naming crypto.subtle, then TextDecoder, when their polyfills are missing', async () => {
      const bare = await reactNative().runRound(await newDevice());
      expect(bare).toMatchObject({
        status: 'error',
        name: 'FedgeError',
        code: 'missing_platform_api',
        message: expect.stringMatching(/crypto\.subtle is needed/),
      });
      const subtleOnly = await reactNative({ crypto: webcrypto }).runRound(await newDevice());
      expect(subtleOnly).toMatchObject({
        status: 'error',
        code: 'missing_platform_api',
        message: expect.stringMatching(/TextDecoder is needed.*fast-text-encoding/),
      });
    }, 60_000);

    it('runs a round with the documented polyfills (Web Crypto, TextDecoder)', async () => {
      // Stand-ins for react-native-quick-crypto (crypto.subtle) and fast-text-encoding (TextDecoder).
      const outcome = await reactNative({ crypto: webcrypto, TextDecoder }).runRound(await newDevice());
      expect(outcome).toEqual(accepted(40));
    }, 60_000);
  });

  it('measures the minified browser bundle of the SDK without tfjs', async () => {
    const out = await build({
      stdin: { contents: "export * from '@fedge/client';", resolveDir: app, loader: 'ts' },
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      external: ['@tensorflow/tfjs'],
      write: false,
      logLevel: 'silent',
    });
    const bytes = out.outputFiles[0]!.contents;
    const gz = gzipSync(bytes).length;
    console.log(
      `[package] browser bundle of @fedge/client, minified, tfjs excluded: ${(bytes.length / 1024).toFixed(1)} KiB (${(gz / 1024).toFixed(1)} KiB gzip)`,
    );
    expect(bytes.length).toBeGreaterThan(10_000); // the whole SDK is in it
    expect(new TextDecoder().decode(bytes)).toMatch(/from"@tensorflow\/tfjs"/);
  });
});
