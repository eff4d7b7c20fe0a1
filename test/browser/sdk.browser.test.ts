/**
 * The SDK in a real browser: headless Chromium (driven by playwright-core) loads a page from a
 * small Node server on 127.0.0.1, on another origin than the aggregator (the one started by
 * test/node/global-setup.ts), so every call is a cross-origin request with its CORS preflight. The
 * page bundles the SDK with TensorFlow.js (esbuild, platform browser), generates its data, trains
 * with the tfjs cpu backend and submits its update. The browser example
 * (client-sdk/examples/browser.html + browser.ts) is run the same way.
 *
 * Needs Chromium at /usr/bin/chromium (or FEDGE_CHROMIUM): `apt-get install -y chromium`;
 * .ci/run installs it.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FedgeAdmin } from '../../client-sdk/src/index.ts';
import { KAT_FIRST_64, KAT_SHA256_4096 } from '../shared/secagg-kat.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';
import { type BrowserBundle, bundlePage, nodeOnlyApis, repoInputs } from './bundle.ts';
import { launchChromium, serveStatic } from './chromium.ts';
import type { PageRunConfig, PageRunResult } from './page.ts';

const fedgeUrl = inject('fedgeUrl');
const admin = new FedgeAdmin({ baseUrl: fedgeUrl, token: inject('fedgeAdminToken') });

const out = mkdtempSync(join(tmpdir(), 'fedge-browser-'));
let pageBundle: BrowserBundle;
let exampleBundle: BrowserBundle;
let server: Server | undefined;
let origin: string;
let browser: Browser | undefined;

beforeAll(async () => {
  await useWasmBackend(); // Node side: only to build the task's model
  [pageBundle, exampleBundle] = await Promise.all([
    bundlePage({ entry: 'test/browser/page.ts', html: 'test/browser/page.html', outDir: join(out, 'page') }),
    bundlePage({
      entry: 'client-sdk/examples/browser.ts',
      html: 'client-sdk/examples/browser.html',
      outDir: join(out, 'example'),
      scriptPath: 'dist/browser.js',
    }),
  ]);
  ({ server, origin } = await serveStatic(out));
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(out, { recursive: true, force: true });
});

describe('the SDK in headless Chromium', () => {
  it('bundles for the browser without any Node-only API', () => {
    expect(nodeOnlyApis(pageBundle)).toEqual([]);
    expect(nodeOnlyApis(exampleBundle)).toEqual([]);
    const text = pageBundle.text;
    expect(text).not.toMatch(/["']node:[a-z_/]+["']/);
    // The SDK's own modules import nothing but each other, TensorFlow.js and (secure aggregation) the audited shamir-secret-sharing.
    const sdkFiles = repoInputs(pageBundle.metafile).filter((p) => p.startsWith('client-sdk/src/'));
    expect(sdkFiles).toEqual(
      expect.arrayContaining(['client-sdk/src/index.ts', 'client-sdk/src/client.ts', 'client-sdk/src/training.ts', 'client-sdk/src/internal/http.ts']),
    );
    for (const file of sdkFiles) {
      for (const imp of pageBundle.metafile.inputs[file]!.imports) {
        expect(
          imp.path.startsWith('client-sdk/src/') ||
            imp.path.includes('node_modules/@tensorflow/tfjs/') ||
            imp.path.includes('node_modules/shamir-secret-sharing/'),
          `${file} imports ${imp.path}`,
        ).toBe(true);
      }
    }
    expect(repoInputs(pageBundle.metafile).filter((p) => p.startsWith('aggregator/'))).toEqual([]);
  });

  it('participates from a page on another origin: ack, published version, no leaked tensors', async () => {
    const task = await newTask();
    const creds = await admin.registerClient(task.id, 'browser test');
    const page = await openPage(`${origin}/page/page.html`);
    expect(new URL(origin).origin).not.toBe(new URL(fedgeUrl).origin);
    const config: PageRunConfig = { baseUrl: fedgeUrl, taskId: task.id, token: creds.token, numExamples: 48, seed: 11 };
    const t0 = performance.now();
    const run: PageRunResult = await page
      .evaluate((c) => window.fedgeTest.run(c), config)
      .catch((e: unknown) => {
        throw new Error(`the page failed: ${(e as Error).message}\npage log:\n${page.logs.join('\n')}`);
      });
    const ms = performance.now() - t0;

    expect(run.isSecureContext).toBe(true); // crypto.subtle needs it (http://127.0.0.1 is one)
    expect(run.origin).toBe(origin);
    expect(run.backend).toBe('cpu');
    expect(run.result.status).toBe('accepted');
    if (run.result.status !== 'accepted') return;
    expect(run.result.ack).toMatchObject({ taskId: task.id, round: 1, seq: 1, numExamples: 48, clientId: creds.clientId });
    expect(run.result.ack.bodySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(run.result.assignment).toMatchObject({ round: 1, baseVersion: 0 });
    expect(Object.keys(run.result.train.metrics).sort()).toEqual(['accuracy', 'loss']);
    expect(run.steps).toEqual(['checking_in', 'downloading', 'training', 'epoch 0', 'epoch 1', 'submitting']);
    expect(run.tensorsAfter).toBe(run.tensorsBefore);

    // The round's goal (1) was met: version 1 is published from round 1, by this one client.
    expect(run.published).toMatchObject({ taskId: task.id, version: 1, parentVersion: 0, round: 1, participants: 1, numExamples: 48 });
    const v0 = await admin.getManifest(task.id, 0);
    const current = await admin.getManifest(task.id, 'current');
    expect(current).toMatchObject({ version: 1, contentHash: run.published.contentHash });
    expect(current.contentHash).not.toBe(v0.contentHash);
    // Upload: one update (4·(4·8+8+8·3+3) bytes of Δ plus header); download: version 0 once.
    expect(run.bytesSent).toBeGreaterThan(4 * 67);
    expect(run.bytesReceived).toBeGreaterThan(v0.byteLength);

    // Every call went cross-origin, and the aggregator allowed it.
    const calls = await page.aggregatorCalls();
    expect(calls.length).toBeGreaterThanOrEqual(5);
    for (const call of calls) {
      expect(call.requestOrigin, call.url).toBe(origin);
      expect(call.allowOrigin, call.url).toBe('*');
    }
    expect(calls.map((c) => `${c.method} ${c.status}`)).toContain('PUT 200');
    expect(page.errors).toEqual([]);
    console.log(
      `[browser] ${run.userAgent.match(/(?:Headless)?Chrome\/[\d.]+/)?.[0]}, tfjs ${run.tfVersion} (${run.backend}); participate + publish in ${ms.toFixed(0)} ms; page bundle ${(pageBundle.text.length / 1024).toFixed(0)} KiB built in ${pageBundle.buildMs.toFixed(0)} ms`,
    );
    await page.close();
  }, 90_000);

  it("the secure-aggregation mask PRG gives the known answer in Chromium's WebCrypto", async () => {
    const page = await openPage(`${origin}/page/page.html`);
    const kat = await page.evaluate(() => window.fedgeTest.maskKat());
    expect(kat).toEqual({ first64: KAT_FIRST_64, sha256: KAT_SHA256_4096 });
    await page.close();
  });

  it('runs the browser example (client-sdk/examples/browser.html)', async () => {
    const task = await newTask();
    const creds = await admin.registerClient(task.id, 'browser example');
    const query = new URLSearchParams({ server: fedgeUrl, task: task.id, token: creds.token });
    const page = await openPage(`${origin}/example/browser.html?${query}`);
    await page.click('#run');
    await page
      .waitForFunction(
        () =>
          ['accepted', 'late', 'error'].includes(document.getElementById('status')!.dataset.status!) &&
          document.getElementById('log')!.textContent!.includes('tensors in memory'),
        null,
        { timeout: 60_000 },
      )
      .catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\npage log:\n${page.logs.join('\n')}`);
      });
    const status = await page.$eval('#status', (el) => (el as HTMLElement).dataset.status);
    const log = await page.$eval('#log', (el) => el.textContent ?? '');
    expect(status, log).toBe('accepted');
    expect(log).toMatch(/accepted: round 1, #1 in the round, 200 examples/);
    expect(log).toMatch(/accuracy of the latest published model on this device's data: \d+\.\d%/);
    expect(log).toMatch(/tensors in memory: 0\n/);
    expect(page.errors).toEqual([]);
    expect((await admin.listRounds(task.id)).find((r) => r.round === 1)).toMatchObject({ accepted: 1, numExamples: 200 });
    await page.close();
  }, 90_000);
});

async function newTask() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', inputShape: [4] }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
  try {
    return await admin.createTask(model, {
      name: 'browser test',
      rounds: { clientsPerRound: 1, overSelection: 1, deadlineSeconds: 120 },
      plan: { epochs: 2, batchSize: 8, learningRate: 0.2 },
    });
  } finally {
    model.dispose();
  }
}

interface AggregatorCall {
  method: string;
  url: string;
  status: number;
  requestOrigin: string | undefined;
  allowOrigin: string | undefined;
}

/** A new page at `url` (waited for until its script set `data-ready`), with its console, errors and calls to the aggregator recorded. */
async function openPage(url: string): Promise<Page & { logs: string[]; errors: string[]; aggregatorCalls(): Promise<AggregatorCall[]> }> {
  const page = await browser!.newPage();
  const logs: string[] = [];
  const errors: string[] = [];
  const calls: Promise<AggregatorCall>[] = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('requestfailed', (r) => logs.push(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (res) => {
    if (!res.url().startsWith(fedgeUrl)) return;
    calls.push(
      (async () => ({
        method: res.request().method(),
        url: res.url(),
        status: res.status(),
        requestOrigin: (await res.request().allHeaders()).origin,
        allowOrigin: (await res.allHeaders())['access-control-allow-origin'],
      }))(),
    );
  });
  const response = await page.goto(url);
  expect(response?.status()).toBe(200);
  if (url.includes('/page/')) await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 30_000 });
  else await page.waitForLoadState('load');
  return Object.assign(page, { logs, errors, aggregatorCalls: () => Promise.all(calls) });
}
