/**
 * @module Chaos: kill -9 the runtime at random instants while clients keep submitting and
 * retrying, then check that nothing acknowledged was lost or counted twice.
 *
 *   npm run chaos -- [--kills 100] [--clients 12] [--per-round 5] [--seed 1]
 *
 * A real `wrangler dev` (workerd, on-disk D1, R2 and Durable Object storage) is started, killed
 * with SIGKILL (its whole process group: wrangler, workerd) after a random 0.2–2.5 s, and started
 * again on the same state, `--kills` times. Meanwhile every client loops: check in, train (a
 * deterministic Δ of its own for each round), submit, retrying the same bytes through refused
 * connections, resets and 5xx until it gets an answer. Afterwards, with the runtime up:
 *
 * - every acknowledged update is a participant of its round's published version, or counted in
 *   the live round, exactly once (`lost`, `doubled`);
 * - the versions run 0..current with no gap, each the child of the one before and of one round;
 * - every version's bytes hash to its content hash;
 * - every version equals the float64 FedAvg of its parent and its participants' Δ (≤ 1e-6), which a
 *   double-counted or half-applied update would break.
 *
 * `runChaos` is also called by the suite with a few kills (test/node/chaos.test.ts).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { UPDATE_META } from '#protocol/messages.ts';
import { concatTensors, decodeTensors, encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import { findFreePort, type LocalServer, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';

export interface ChaosOptions {
  kills: number;
  clients: number;
  clientsPerRound: number;
  seed: number;
  /** Random pause before each kill, ms. */
  minGapMs?: number;
  maxGapMs?: number;
  log?: (line: string) => void;
}

export interface ChaosReport {
  kills: number;
  acknowledged: number;
  lost: number;
  doubled: number;
  versions: number;
  missingVersions: number;
  hashMismatches: number;
  maxDeviation: number;
  rounds: number;
  /** 409 answers to a submit of an assigned client (none expected: no deadline, every assigned client submits). */
  conflicts: number;
  retries: number;
  seconds: number;
}

const INPUTS = 50;
const UNITS = 40; // 2,040 parameters
const TENSORS = [
  { name: 'dense/kernel', shape: [INPUTS, UNITS] },
  { name: 'dense/bias', shape: [UNITS] },
];
const P = INPUTS * UNITS + UNITS;
const ADMIN_TOKEN = 'chaos-admin-token';

/** The Δ a client trains in a round, and its example count: known to the checker without asking the server. */
export function deltaOf(client: number, round: number): { delta: Float32Array; n: number } {
  const next = rng(client * 100_003 + round);
  return { delta: Float32Array.from({ length: P }, () => (next() * 2 - 1) * 0.01), n: 1 + ((client * 7 + round) % 20) };
}

interface Ack {
  client: number;
  clientId: string;
  round: number;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {});
  const started = Date.now();
  const stateDir = mkdtempSync(join(tmpdir(), 'fedge-chaos-'));
  const port = await findFreePort();
  const start = async (migrate: boolean): Promise<LocalServer> => {
    // A killed runtime can hold its port for a moment after its process group is gone.
    for (let attempt = 0; ; attempt++) {
      try {
        return await startLocalServer({ port, stateDir, adminToken: ADMIN_TOKEN, migrate, onOutput: () => {} });
      } catch (e) {
        if (attempt >= 40 || !String(e).includes('already in use')) throw e;
        await sleep(250);
      }
    }
  };
  let server: LocalServer = await start(true);
  const base = `${server.url}/v1`;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  let stopping = false;
  let retries = 0;
  let conflicts = 0;
  const acks: Ack[] = [];
  try {
    const created = await (
      await fetch(`${base}/tasks`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({
          name: 'chaos',
          modelTopology: denseTopology(INPUTS, [{ name: 'dense', units: UNITS }]),
          initialWeights: Buffer.from(
            encodeTensors(
              splitFlat(
                TENSORS,
                Float32Array.from({ length: P }, (_, i) => Math.sin(i) / 10),
              ),
            ),
          ).toString('base64'),
          // No deadline inside a run: a round closes only on its goal, so every assigned client counts.
          rounds: { clientsPerRound: o.clientsPerRound, overSelection: 1, deadlineSeconds: 7 * 86_400, maxExamplesPerClient: 100 },
        }),
      })
    ).json();
    const taskId = created.id as string;
    const tokens: string[] = [];
    for (let i = 0; i < o.clients; i++)
      tokens.push((await (await fetch(`${base}/tasks/${taskId}/clients`, { method: 'POST', headers: admin, body: '{}' })).json()).token);

    /** fetch until a whole HTTP answer that is not a server error, a 429 or a 408: through kills and restarts. */
    const persist = async (path: string, init: RequestInit): Promise<{ status: number; body: any }> => {
      for (;;) {
        try {
          const res = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(15_000) });
          const text = await res.text(); // inside the try: the runtime may die mid-answer
          if (res.status < 500 && res.status !== 429 && res.status !== 408) return { status: res.status, body: JSON.parse(text) };
          if (res.status === 429) await sleep(Math.min(2, Number(res.headers.get('retry-after') ?? 1)) * 1000);
        } catch {
          /* refused, reset, cut off, timed out: the runtime is down or restarting */
        }
        retries++;
        await sleep(150);
      }
    };

    const clientLoop = async (k: number) => {
      const auth = { authorization: `Bearer ${tokens[k]}` };
      const clientId = tokens[k]!.slice(0, tokens[k]!.indexOf('.'));
      while (!stopping) {
        const c = (await persist(`/tasks/${taskId}/checkin`, { method: 'POST', headers: auth })).body;
        if (c.status !== 'assigned') {
          await sleep(600); // under the per-client rate (2/s)
          continue;
        }
        const { delta, n } = deltaOf(k, c.round);
        // Encoded once: every retry sends the same bytes, so the server can count it once.
        const body = encodeTensors(splitFlat(TENSORS, delta), { [UPDATE_META.baseVersion]: String(c.baseVersion), [UPDATE_META.numExamples]: String(n) });
        const put = await persist(`/tasks/${taskId}/rounds/${c.round}/update`, {
          method: 'PUT',
          headers: { ...auth, 'content-type': 'application/octet-stream' },
          body,
        });
        const answer = put.body;
        if (put.status === 200) acks.push({ client: k, clientId, round: c.round });
        else if (put.status === 409) conflicts++;
        else throw new Error(`client ${k} round ${c.round}: ${put.status} ${JSON.stringify(answer)}`);
      }
    };
    const loops = tokens.map((_, k) => clientLoop(k));

    const next = rng(o.seed);
    const minGap = o.minGapMs ?? 200;
    const maxGap = o.maxGapMs ?? 2_500;
    for (let kill = 1; kill <= o.kills; kill++) {
      await sleep(minGap + next() * (maxGap - minGap));
      process.kill(-server.pid, 'SIGKILL');
      await server.exited;
      server = await start(false);
      log(`kill ${kill}/${o.kills}: ${acks.length} acknowledged so far`);
    }
    await sleep(1_000);
    stopping = true;
    await Promise.all(loops);

    return { ...(await verify(base, taskId, admin, acks)), kills: o.kills, conflicts, retries, seconds: (Date.now() - started) / 1000 };
  } finally {
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function verify(
  base: string,
  taskId: string,
  admin: Record<string, string>,
  acks: Ack[],
): Promise<Omit<ChaosReport, 'kills' | 'conflicts' | 'retries' | 'seconds'>> {
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: admin });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res;
  };
  const task = await (await get(`/tasks/${taskId}`)).json();
  const versions: any[] = [];
  for (let before: number | undefined; ; ) {
    const page = (await (await get(`/tasks/${taskId}/models?limit=200${before === undefined ? '' : `&before=${before}`}`)).json()).versions as any[];
    versions.push(...page);
    if (page.length < 200) break;
    before = page[page.length - 1].version;
  }
  versions.sort((a, b) => a.version - b.version);
  const byClientId = new Map(acks.map((a) => [a.clientId, a.client]));
  let missingVersions = 0;
  let hashMismatches = 0;
  let maxDeviation = 0;
  const counted = new Map<string, number>();
  let prev: Float32Array | null = null;
  const rounds = new Set<number>();
  for (let v = 0; v <= task.currentVersion; v++) {
    const m = versions.find((x) => x.version === v);
    if (!m || (v > 0 && (m.parentVersion !== v - 1 || rounds.has(m.round)))) {
      missingVersions++;
      continue;
    }
    const bytes = new Uint8Array(await (await get(`/tasks/${taskId}/models/${v}/weights`)).arrayBuffer());
    if (createHash('sha256').update(bytes).digest('hex') !== m.contentHash) hashMismatches++;
    const weights = concatTensors(decodeTensors(bytes).tensors);
    if (v > 0 && prev) {
      rounds.add(m.round);
      const r = await (await get(`/tasks/${taskId}/rounds/${m.round}`)).json();
      const sum = new Float64Array(P);
      let total = 0;
      for (const p of r.participants as { clientId: string; numExamples: number }[]) {
        const key = `${m.round}/${p.clientId}`;
        counted.set(key, (counted.get(key) ?? 0) + 1);
        const { delta, n } = deltaOf(byClientId.get(p.clientId) ?? -1, m.round);
        if (n !== p.numExamples) maxDeviation = Infinity;
        for (let i = 0; i < P; i++) sum[i]! += n * delta[i]!;
        total += n;
      }
      for (let i = 0; i < P; i++) maxDeviation = Math.max(maxDeviation, Math.abs(weights[i]! - (prev[i]! + sum[i]! / total)));
    }
    prev = weights;
  }
  // The live round's accepted updates, not yet in a version.
  const live = task.currentRound as { round: number; accepted: number } | null;
  const liveAcks = acks.filter((a) => live && a.round === live.round).length;
  let lost = 0;
  for (const a of acks) if (!counted.has(`${a.round}/${a.clientId}`) && !(live && a.round === live.round)) lost++;
  if (live && liveAcks > live.accepted) lost += liveAcks - live.accepted;
  const doubled = [...counted.values()].filter((n) => n > 1).length + (live && live.accepted > liveAcks ? live.accepted - liveAcks : 0);
  // Each acknowledgement names one (round, client); a retry answered with the stored one is the same update.
  const distinct = new Set(acks.map((a) => `${a.round}/${a.clientId}`)).size;
  return { acknowledged: distinct, lost, doubled, versions: versions.length, missingVersions, hashMismatches, maxDeviation, rounds: rounds.size };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      kills: { type: 'string', default: '100' },
      clients: { type: 'string', default: '12' },
      'per-round': { type: 'string', default: '5' },
      seed: { type: 'string', default: '1' },
    },
  });
  const report = await runChaos({
    kills: Number(values.kills),
    clients: Number(values.clients),
    clientsPerRound: Number(values['per-round']),
    seed: Number(values.seed),
    log: (l) => console.log(l),
  });
  console.log(JSON.stringify({ name: 'chaos', ...report }));
  const ok =
    report.lost === 0 &&
    report.doubled === 0 &&
    report.missingVersions === 0 &&
    report.hashMismatches === 0 &&
    report.maxDeviation <= 1e-6 &&
    report.conflicts === 0;
  console.log(ok ? 'chaos: every acknowledged update counted exactly once; every version present, hashed and exact' : 'chaos: FAILED');
  process.exit(ok ? 0 : 1);
}
