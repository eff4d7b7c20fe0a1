/**
 * The operator dashboard in headless Chromium, served by the real platform (`wrangler dev` of
 * test/node/global-setup.ts, whose build step bundles the dashboard into its static assets): Node
 * clients train with tfjs and run rounds, the page signs in, and every number it shows is checked
 * against the API; the live round moves without a reload when clients submit and a round closes;
 * a wrong token is refused; downloads, revoke and pause/resume/stop work from the keyboard.
 *
 * Screenshots for a person to look at are written to test-output/dashboard/ (gitignored):
 * signin-refused.png, tasks-1280.png, task-1280.png, task-live-1280.png, task-phone.png,
 * task-stopped-1280.png, task-dp-1280.png.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FedgeAdmin, FedgeClient } from '../../client-sdk/src/index.ts';
import { argmaxData, argmaxTask } from '../sim/synthetic.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';
import { launchChromium } from './chromium.ts';

const fedgeUrl = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');
const admin = new FedgeAdmin({ baseUrl: fedgeUrl, token: adminToken });
const SHOTS = join(import.meta.dirname, '..', '..', 'test-output', 'dashboard');

let browser: Browser | undefined;
let taskId: string;
const clients: { clientId: string; token: string }[] = [];

/** One client's participation in the open round (train on its own seeded data), then its federated evaluation of `evaluate`. */
async function participate(i: number, seed: number): Promise<void> {
  const { xs, ys } = argmaxData(32, seed);
  try {
    const result = await new FedgeClient({ baseUrl: fedgeUrl, taskId, token: clients[i]!.token }).participate({ xs, ys });
    expect(result.status).toBe('accepted');
  } finally {
    tf.dispose([xs, ys]);
  }
}

async function evaluate(i: number, version: number, seed: number): Promise<void> {
  const { xs, ys } = argmaxData(40, seed);
  try {
    await new FedgeClient({ baseUrl: fedgeUrl, taskId, token: clients[i]!.token }).evaluate(version, { xs, ys });
  } finally {
    tf.dispose([xs, ys]);
  }
}

/** A full round of clients 0 and 1, published as `version`, evaluated by client 0 (federated evaluation) and by the operator. */
async function round(version: number): Promise<void> {
  await Promise.all([participate(0, version * 10), participate(1, version * 10 + 1)]);
  await admin.waitForVersion(taskId, version, { timeoutMs: 30_000 });
  await evaluate(0, version, version * 10 + 2);
  await admin.setServerMetrics(taskId, version, { accuracy: 0.5 + version / 10, loss: 1 / version });
}

interface DashboardPage extends Page {
  problems: string[];
}

async function openDashboard(width = 1280, height = 900): Promise<DashboardPage> {
  const page = (await browser!.newPage({ viewport: { width, height }, acceptDownloads: true })) as DashboardPage;
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) page.problems.push(`console.${m.type()}: ${m.text()}`);
  });
  await page.goto(`${fedgeUrl}/`); // the root redirects to /dashboard/
  expect(new URL(page.url()).pathname).toBe('/dashboard/');
  return page;
}

/** Signs in from the keyboard: the token field has focus on load, Enter submits. */
async function signIn(page: Page, token: string): Promise<void> {
  await page.waitForSelector('#token:focus');
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
}

/** Signs in and opens the test's task by its address (the hash route). */
async function openTask(page: Page): Promise<void> {
  await signIn(page, adminToken);
  await page.waitForSelector('table[data-table="tasks"]');
  await page.goto(`${fedgeUrl}/dashboard/#/tasks/${taskId}`);
}

const text = (page: Page, selector: string) => page.$eval(selector, (el) => el.textContent?.trim() ?? '');

/** The rows of a dashboard table, as cell texts. */
function rows(page: Page, table: string): Promise<string[][]> {
  return page.$$eval(`table[data-table="${table}"] tbody tr, table[data-chart-table="${table}"] tbody tr`, (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')),
  );
}

const fmt = (v: number | undefined) => (v === undefined ? '—' : Number(v.toPrecision(4)).toString());

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  await useWasmBackend();
  taskId = await argmaxTask(admin, 'dashboard test', {
    rounds: { clientsPerRound: 2, overSelection: 1, deadlineSeconds: 300 },
    plan: { epochs: 2, batchSize: 8 },
  });
  for (let i = 0; i < 3; i++) clients.push(await admin.registerClient(taskId, `device ${i}`));
  await round(1);
  await round(2);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

describe('the dashboard, served by the platform', () => {
  it('refuses a wrong token, and keeps no token in the URL or the session', async () => {
    const page = await openDashboard();
    await signIn(page, 'not-the-admin-token');
    await page.waitForFunction(() => document.getElementById('signin-error')?.textContent?.includes('refused'));
    expect(await text(page, '#signin-error')).toBe('The platform refused this token (unauthorized).');
    expect(page.url()).not.toContain('not-the-admin-token');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.$('table[data-table="tasks"]')).toBeNull();
    await page.screenshot({ path: join(SHOTS, 'signin-refused.png') });
    expect(page.problems).toEqual(['console.error: Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
    await page.close();
  }, 30_000);

  it('shows the tasks and a task with the numbers the API gives: versions, metrics, rounds, clients, the live round', async () => {
    const page = await openDashboard();
    await signIn(page, adminToken);
    await page.waitForSelector('table[data-table="tasks"]');
    const taskRows = await rows(page, 'tasks');
    const listed = new Map((await admin.listTasks({ limit: 200 })).map((t) => [t.id, t]));
    // Other test files create tasks on the same platform meanwhile: every row shown is the API's.
    for (const r of taskRows)
      expect([r[0], r[1], r[2]]).toEqual([listed.get(r[5]!)!.name, listed.get(r[5]!)!.status, String(listed.get(r[5]!)!.currentVersion)]);
    const mine = taskRows.find((r) => r[5] === taskId)!;
    expect(mine.slice(0, 4)).toEqual(['dashboard test', 'active', '2', '67']);
    await page.screenshot({ path: join(SHOTS, 'tasks-1280.png') });

    // To the task from the keyboard: Tab to its link, Enter.
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate((id) => document.activeElement?.getAttribute('href') === `#/tasks/${id}`, taskId)) break;
    }
    await page.keyboard.press('Enter');
    await page.waitForSelector('table[data-table="versions"]');
    await page.waitForSelector('figure[data-chart="loss"] canvas');
    expect(page.url()).toBe(`${fedgeUrl}/dashboard/#/tasks/${taskId}`);
    expect(page.url()).not.toContain(adminToken);

    // Versions: every one, newest first, with the API's participants, examples and hash.
    const versions = await admin.listVersions(taskId);
    const versionRows = await rows(page, 'versions');
    expect(versionRows.map((r) => r[0])).toEqual(versions.map((v) => String(v.version)));
    expect(versionRows.map((r) => r[0])).toEqual(['2', '1', '0']);
    for (const [i, v] of versions.entries()) {
      const r = versionRows[i]!;
      expect(r[1]).toBe(v.parentVersion === null ? '—' : String(v.parentVersion));
      expect(r[3]).toBe(v.strategy ? v.strategy.name : '—');
      expect(r[4]).toBe(String(v.participants));
      expect(r[5]).toBe(v.numExamples.toLocaleString('en-US'));
      expect(r[7]).toBe(v.contentHash.slice(0, 12));
    }
    expect(await page.$$eval('[data-hash]', (els) => els.map((e) => e.getAttribute('data-hash')))).toEqual(versions.map((v) => v.contentHash));
    expect(versions[0]).toMatchObject({ version: 2, participants: 2, numExamples: 64 });

    // Charts: the data tables under them equal the API's metrics per version.
    const ascending = [...versions].reverse();
    const accuracy = await rows(page, 'accuracy');
    expect(accuracy.map((r) => r[0])).toEqual(['0', '1', '2']);
    const accHeaders = await page.$$eval('table[data-chart-table="accuracy"] th', (ths) => ths.map((t) => t.textContent));
    expect(accHeaders).toEqual(['version', 'federated evaluation · accuracy', 'server · accuracy', 'training · accuracy']);
    expect(accuracy.map((r) => r.slice(1))).toEqual(
      ascending.map((v) => [fmt(v.federatedEvaluation?.metrics.accuracy), fmt(v.serverMetrics?.accuracy), fmt(v.metrics?.accuracy)]),
    );
    expect(accuracy[2]![2]).toBe('0.7'); // the operator's 0.5 + 2/10
    const loss = await rows(page, 'loss');
    expect(loss.map((r) => r.slice(1))).toEqual(
      ascending.map((v) => [fmt(v.federatedEvaluation?.metrics.loss), fmt(v.serverMetrics?.loss), fmt(v.metrics?.loss)]),
    );
    expect(await page.$$eval('figure[data-chart] canvas', (cs) => cs.length)).toBe(2);

    // Rounds and clients.
    const roundRows = await rows(page, 'rounds');
    const apiRounds = await admin.listRounds(taskId);
    expect(roundRows.map((r) => [r[0], r[1], r[2], r[5]])).toEqual(
      apiRounds.map((r) => [String(r.round), r.status, String(r.accepted), r.resultVersion === null ? '—' : `version ${r.resultVersion}`]),
    );
    const clientRows = await rows(page, 'clients');
    expect(clientRows.map((r) => [r[0], r[1], r[2]]).sort()).toEqual(clients.map((c, i) => [c.clientId, `device ${i}`, 'active']).sort());

    // Live: no round open after round 2 closed (the next check-in opens round 3).
    const task = await admin.getTask(taskId);
    expect(await text(page, '[data-field="task-status"]')).toBe(task.status);
    if (task.currentRound === null) expect(await text(page, '[data-field="no-round"]')).toMatch(/No round yet/);
    else expect(await text(page, '[data-field="round"]')).toBe(String(task.currentRound.round));
    await page.screenshot({ path: join(SHOTS, 'task-1280.png'), fullPage: true });
    expect(page.problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('moves without a reload: a submission shows in the live round, a closed round adds its version', async () => {
    const page = await openDashboard();
    await openTask(page);
    await page.waitForSelector('table[data-table="versions"]');
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));

    await participate(0, 30); // round 3 opens, 1 of 2 accepted
    await page.waitForFunction(() => document.querySelector('[data-field="accepted"]')?.textContent === '1 / 2', null, { timeout: 10_000 });
    const live = (await admin.getTask(taskId)).currentRound!;
    expect(live).toMatchObject({ round: 3, status: 'open', accepted: 1, assigned: 1 });
    expect(await text(page, '[data-field="round"]')).toBe('3');
    expect(await text(page, '[data-field="assigned"]')).toBe('1 / 2');
    expect(await text(page, '[data-field="deadline"]')).toMatch(/^in (\d+ min \d\d s|\d+ s)$/);
    expect(await page.$eval('progress', (p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max])).toEqual([1, 2]);
    await page.screenshot({ path: join(SHOTS, 'task-live-1280.png'), fullPage: true });

    await participate(1, 31); // the goal: round 3 closes, version 3 is published
    await page.waitForFunction(() => document.querySelector('table[data-table="versions"] tbody tr td')?.textContent === '3', null, { timeout: 15_000 });
    expect((await rows(page, 'versions')).map((r) => r[0])).toEqual(['3', '2', '1', '0']);
    expect(await text(page, 'header.task-head p')).toContain('version 3');
    await page.waitForFunction(() => [...document.querySelectorAll('table[data-table="rounds"] tbody tr')].some((tr) => tr.textContent?.startsWith('3closed')));
    expect((await rows(page, 'rounds')).find((r) => r[0] === '3')!.slice(0, 3)).toEqual(['3', 'closed', '2']);
    expect(navigations).toEqual([]);
    expect(page.problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('downloads a version as safetensors and as tfjs, with the hash the API states', async () => {
    const page = await openDashboard();
    await openTask(page);
    await page.waitForSelector('[data-download="2:safetensors"]');
    const v2 = await admin.getManifest(taskId, 2);

    const [safetensors] = await Promise.all([page.waitForEvent('download'), page.click('[data-download="2:safetensors"]')]);
    expect(safetensors.suggestedFilename()).toBe(`${taskId}-v2.safetensors`);
    const bytes = readFileSync((await safetensors.path())!);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(v2.contentHash);

    const files = new Map<string, Buffer>();
    const got = new Promise<void>((resolve) => {
      page.on('download', async (d) => {
        files.set(d.suggestedFilename(), readFileSync((await d.path())!));
        if (files.size === 2) resolve();
      });
    });
    await page.click('[data-download="2:tfjs"]');
    await got;
    const modelJson = JSON.parse(files.get('model.json')!.toString('utf8'));
    expect(modelJson.userDefinedMetadata.fedge).toEqual({ taskId, version: 2, contentHash: v2.contentHash });
    expect(modelJson.weightsManifest[0].paths).toEqual(['weights.bin']);
    expect(files.get('weights.bin')!.length).toBe(67 * 4);
    expect(page.problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('is readable at phone width: nothing wider than the screen but the tables, which scroll', async () => {
    const page = await openDashboard(390, 844);
    await openTask(page);
    await page.waitForSelector('figure[data-chart="accuracy"] canvas');
    await page.waitForTimeout(300); // the charts follow their container's width
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    const chartWidth = await page.$eval('figure[data-chart="accuracy"] canvas', (c) => c.getBoundingClientRect().width);
    expect(chartWidth).toBeGreaterThan(240);
    expect(chartWidth).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(SHOTS, 'task-phone.png'), fullPage: true });
    expect(page.problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('revokes a client and pauses, resumes and stops the task from its buttons (keyboard), as the API then shows', async () => {
    const page = await openDashboard();
    page.on('dialog', (d) => void d.accept());
    await openTask(page);
    await page.waitForSelector(`[data-revoke="${clients[2]!.clientId}"]`);

    // The clients table reloads every 15 s: a reload between the focus and the key press replaces
    // the button and the press goes nowhere, so the press is repeated until the button is gone.
    const gone = (timeout: number) =>
      page
        .waitForFunction((id) => !document.querySelector(`[data-revoke="${id}"]`), clients[2]!.clientId, { timeout })
        .then(
          () => true,
          () => false,
        );
    for (let attempt = 0; attempt < 4; attempt++) {
      if (await page.$(`[data-revoke="${clients[2]!.clientId}"]`)) {
        await page.focus(`[data-revoke="${clients[2]!.clientId}"]`);
        await page.keyboard.press('Enter');
      }
      if (await gone(5_000)) break;
    }
    expect(await gone(1_000)).toBe(true);
    expect((await admin.listClients(taskId)).find((c) => c.clientId === clients[2]!.clientId)!.status).toBe('revoked');
    expect((await rows(page, 'clients')).find((r) => r[0] === clients[2]!.clientId)![2]).toBe('revoked');

    const press = async (action: string, status: string) => {
      await page.focus(`[data-action="${action}"]`);
      await page.keyboard.press('Enter');
      await page.waitForFunction((s) => document.querySelector('[data-field="task-status"]')?.textContent === s, status, { timeout: 10_000 });
      expect((await admin.getTask(taskId)).status).toBe(status);
    };
    expect(await page.$eval('[data-action="resume"]', (b) => (b as HTMLButtonElement).disabled)).toBe(true);
    await press('pause', 'paused');
    expect(await page.$eval('[data-action="pause"]', (b) => (b as HTMLButtonElement).disabled)).toBe(true);
    await press('resume', 'active');
    await press('stop', 'stopped');
    expect(await page.$$eval('[data-action]', (bs) => bs.map((b) => (b as HTMLButtonElement).disabled))).toEqual([true, true, true]);
    await page.screenshot({ path: join(SHOTS, 'task-stopped-1280.png'), fullPage: true });

    // Signing out forgets the token.
    await page.click('#signout');
    await page.waitForSelector('#token');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(page.problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('shows ε beside each version of a differentially private task, and charts it', async () => {
    const dpTask = await argmaxTask(admin, 'dashboard dp test', {
      rounds: { clientsPerRound: 2, minClients: 1, deadlineSeconds: 2 },
      plan: { epochs: 1, batchSize: 8 },
      privacy: { mode: 'central', noiseMultiplier: 1.2, clipNorm: 1, samplingRate: 1 },
    });
    const dpClients = [await admin.registerClient(dpTask), await admin.registerClient(dpTask)];
    for (let v = 1; v <= 2; v++) {
      await Promise.all(
        dpClients.map(async (c, i) => {
          const { xs, ys } = argmaxData(16, 100 + 10 * v + i);
          try {
            expect((await new FedgeClient({ baseUrl: fedgeUrl, taskId: dpTask, token: c.token }).participate({ xs, ys })).status).toBe('accepted');
          } finally {
            tf.dispose([xs, ys]);
          }
        }),
      );
      await admin.waitForVersion(dpTask, v, { timeoutMs: 30_000 });
    }
    const versions = await admin.listVersions(dpTask);
    const page = await openDashboard();
    await signIn(page, adminToken);
    await page.waitForSelector('table[data-table="tasks"]');
    await page.goto(`${fedgeUrl}/dashboard/#/tasks/${dpTask}`);
    await page.waitForSelector('[data-chart="epsilon"]');
    const header = await page.$$eval('table[data-table="versions"] thead th', (ths) => ths.map((th) => th.textContent?.trim()));
    expect(header.slice(0, 5)).toEqual(['Version', 'Parent', 'Round', 'Strategy', 'ε (δ)']);
    const shown = (await rows(page, 'versions')).map((r) => [r[0], r[4]]);
    expect(shown).toEqual(versions.map((v) => [String(v.version), v.privacy ? `${v.privacy.epsilon.toFixed(2)} (0.00001)` : '—']));
    expect(versions.map((v) => v.privacy?.rounds ?? 0)).toEqual([2, 1, 0]);
    // The chart's data table holds the accountant's ε of every version (none for version 0).
    const charted = await rows(page, 'epsilon');
    expect(charted.map((r) => r[0])).toEqual(['0', '1', '2']);
    expect(Number(charted[2]![1])).toBeCloseTo(versions[0]!.privacy!.epsilon, 3);
    expect(charted[0]![1]).toBe('—');
    await page.screenshot({ path: join(SHOTS, 'task-dp-1280.png'), fullPage: true });
    expect(page.problems).toEqual([]);
    await page.close();
  }, 60_000);
});
