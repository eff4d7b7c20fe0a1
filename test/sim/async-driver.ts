/**
 * @module The asynchronous driver (FedBuff): no synchronized rounds; see {@link runAsync}. It runs
 * in the main thread (its order of check-ins and submissions is the experiment).
 */

import type * as tf from '@tensorflow/tfjs';
import type { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import type { Assignment, FedgeClient } from '../../client-sdk/src/client.ts';
import { LateUpdateError } from '../../client-sdk/src/errors.ts';
import { rng } from '../shared/random.ts';
import { poison, trainOn, type VirtualClient } from './clients.ts';
import { evaluateAndRecord } from './evaluate.ts';
import type { RoundReport, SimulationOptions } from './runner.ts';

/**
 * The asynchronous driver (FedBuff). Logical time is counted in submissions: a client checks in (so
 * its base is the version current at that moment), trains, and is due after a seeded uniform number
 * of other submissions (0..maxDelay); the due client with the smallest due time submits next, so the
 * order, and with it every staleness, is reproducible from the seed. Every `bufferSize` accepted
 * updates the aggregator publishes a version, which is evaluated like a synchronous round.
 */
export async function runAsync(
  o: SimulationOptions,
  admin: FedgeAdmin,
  taskId: string,
  clients: VirtualClient[],
  evaluator: FedgeClient,
  testData: { xs: tf.Tensor; ys: tf.Tensor } | undefined,
  pick: () => number,
): Promise<{ reports: RoundReport[]; roundsToTarget: number | null; updatesToTarget: number | null }> {
  const bufferSize = Number(o.strategy?.bufferSize ?? 10);
  if (!(bufferSize >= 1 && bufferSize <= clients.length)) throw new Error(`fedbuff: bufferSize ${bufferSize} needs 1..${clients.length} clients`);
  const concurrency = Math.min(clients.length, Math.max(1, Math.round(o.concurrency ?? 2 * bufferSize)));
  const maxDelay = Math.max(0, Math.round(o.maxDelay ?? 2 * concurrency));
  const delays = rng(o.seed ^ 0xde1a7);
  interface Job {
    c: VirtualClient;
    assignment: Assignment;
    delta: Float32Array;
    n: number;
    metrics: Record<string, number>;
    due: number;
    seq: number;
  }
  const inFlight: Job[] = [];
  const busy = new Set<VirtualClient>();
  /** Clients that already submitted to the open buffer: they may not join it again. */
  let blocked = new Set<VirtualClient>();
  const reports: RoundReport[] = [];
  let roundsToTarget: number | null = null;
  let updatesToTarget: number | null = null;
  let submissions = 0,
    accepted = 0,
    refused = 0,
    seq = 0,
    version = 0,
    draws = 0;
  let started = performance.now(),
    trainMs = 0,
    examples = 0,
    staleSum = 0,
    staleMax = 0,
    inBuffer = 0;
  const traffic = () => clients.reduce((a, c) => ({ up: a.up + c.traffic.up, down: a.down + c.traffic.down }), { up: 0, down: 0 });
  let since = traffic();

  /** Checks a client in (the SDK step API), trains it on its base version (or poisons), and puts it in flight. */
  async function launch(): Promise<boolean> {
    for (;;) {
      const idle = clients.filter((c) => !busy.has(c) && !blocked.has(c));
      if (idle.length === 0) return false;
      const c = idle[Math.floor(pick() * idle.length)]!;
      const r = await c.client.checkIn();
      if (r.status === 'retry_later') {
        if (r.reason === 'already_submitted') blocked.add(c);
        else await new Promise((res) => setTimeout(res, 25)); // round_closing: the next buffer opens in a moment
        continue;
      }
      const assignment = r;
      const t0 = performance.now();
      const [task, weights] = await Promise.all([c.client.getTaskModel(), c.client.getWeights(assignment.baseVersion)]);
      let delta: Float32Array;
      let metrics: Record<string, number> = {};
      if (c.malicious && o.malicious) {
        delta = await poison(c, o.malicious, o.seed * 1_000_003 + draws++, weights.flat, task, assignment);
      } else {
        ({ delta, metrics } = await trainOn(c, task.modelTopology, weights.manifest.tensors, weights.flat, assignment.plan));
      }
      trainMs += performance.now() - t0;
      busy.add(c);
      inFlight.push({ c, assignment, delta, n: c.n, metrics, due: submissions + Math.floor(delays() * (maxDelay + 1)), seq: seq++ });
      return true;
    }
  }

  while (reports.length < o.rounds) {
    while (inFlight.length < concurrency && (await launch()));
    if (inFlight.length === 0) throw new Error('fedbuff: no client can join the open buffer');
    let next = 0;
    for (let i = 1; i < inFlight.length; i++) {
      const a = inFlight[i]!,
        b = inFlight[next]!;
      if (a.due < b.due || (a.due === b.due && a.seq < b.seq)) next = i;
    }
    const job = inFlight.splice(next, 1)[0]!;
    submissions++;
    try {
      await job.c.client.submitUpdate({
        round: job.assignment.round,
        baseVersion: job.assignment.baseVersion,
        delta: job.delta,
        numExamples: job.n,
        metrics: job.metrics,
      });
      accepted++;
      inBuffer++;
      examples += job.n;
      const staleness = version - job.assignment.baseVersion;
      staleSum += staleness;
      staleMax = Math.max(staleMax, staleness);
      // One update per client per buffer: the aggregator's ledger is keyed by (buffer, client), and
      // its check-in does not yet refuse a client whose stale update landed in the open buffer (a
      // second submit then fails with 500), so the driver keeps such clients out until it publishes.
      blocked.add(job.c);
      o.onClient?.(reports.length + 1, inBuffer, bufferSize);
    } catch (e) {
      if (!(e instanceof LateUpdateError)) throw e;
      refused++; // stale_update: older than maxStaleness; the client drops it and checks in again
    } finally {
      busy.delete(job.c);
    }
    if (inBuffer < bufferSize) continue;
    // The buffer is full: the aggregator publishes the next version.
    version++;
    const before = traffic();
    const evalStarted = performance.now();
    const { accuracy, loss } = await evaluateAndRecord(admin, evaluator, taskId, version, testData);
    const evalMs = performance.now() - evalStarted;
    const report: RoundReport = {
      round: reports.length + 1,
      version,
      accuracy,
      loss,
      participants: inBuffer,
      examples,
      bytesUp: before.up - since.up,
      bytesDown: before.down - since.down,
      seconds: (performance.now() - started) / 1000,
      trainSeconds: trainMs / 1000,
      evalSeconds: evalMs / 1000,
      updates: accepted,
      refused,
      meanStaleness: staleSum / inBuffer,
      maxStaleness: staleMax,
    };
    reports.push(report);
    o.onRound?.(report);
    since = traffic();
    started = performance.now();
    trainMs = examples = staleSum = staleMax = inBuffer = 0;
    blocked = new Set();
    if (o.target !== undefined && accuracy >= o.target) {
      roundsToTarget = report.round;
      updatesToTarget = accepted;
      break;
    }
  }
  return { reports, roundsToTarget, updatesToTarget };
}
