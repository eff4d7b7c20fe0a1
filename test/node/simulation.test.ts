/**
 * The simulated-client suite, in its test-suite size: 10 virtual clients on real MNIST (8,000
 * training / 2,000 held-out test images of the t10k set), the real SDK over real HTTP against the
 * real aggregator, real tfjs (wasm backend) training. Thresholds from the issue; an in-process
 * FedAvg reached 0.92, 0.93 and 0.85–0.89 at these points, so they leave room for seeds, not bugs.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, inject, it } from 'vitest';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import { FedgeClient } from '../../client-sdk/src/client.ts';
import { loadMnistT10k, splitTrainTest } from '../sim/mnist.ts';
import { evaluateVersion, type PartitionName, type RoundReport, simulate, tensorsOf } from '../sim/runner.ts';

const baseUrl = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');

const cases: [PartitionName, number, number][] = [
  ['iid', 5, 0.9],
  ['dirichlet', 10, 0.9],
  ['pathological', 15, 0.8],
];

describe('FedAvg on real MNIST with 10 virtual clients (784-64-10, E = 1, B = 10)', () => {
  for (const [partition, rounds, target] of cases) {
    it(`${partition}: reaches ${target} test accuracy within ${rounds} rounds`, async () => {
      const reports: RoundReport[] = [];
      const result = await simulate({
        baseUrl,
        adminToken,
        clients: 10,
        fraction: 1,
        rounds,
        partition,
        model: 'mlp',
        epochs: 1,
        batchSize: 10,
        learningRate: 0.1,
        seed: 7,
        target,
        onRound: (r) => reports.push(r),
      });
      console.log(`${partition}: ${reports.map((r) => `r${r.round}=${r.accuracy.toFixed(3)}`).join(' ')}`);
      expect(result.roundsToTarget).not.toBeNull();
      expect(result.roundsToTarget!).toBeLessThanOrEqual(rounds);
      const last = reports[reports.length - 1]!;
      expect(last).toMatchObject({ round: result.roundsToTarget, version: result.roundsToTarget, participants: 10, examples: 8_000 });
      // Each round moved one model down and one update up per client (plus small JSON).
      const modelBytes = 4 * (784 * 64 + 64 + 64 * 10 + 10);
      expect(last.bytesUp).toBeGreaterThan(10 * modelBytes);
      expect(last.bytesUp).toBeLessThan(10 * (modelBytes + 4_096));
      expect(last.bytesDown).toBeGreaterThan(10 * modelBytes);

      // The published version, rebuilt from its stored weights by a fresh client, scores what the run reported.
      const admin = new FedgeAdmin({ baseUrl, token: adminToken });
      const fresh = new FedgeClient({ baseUrl, taskId: result.taskId, token: (await admin.registerClient(result.taskId)).token });
      const { test } = splitTrainTest(loadMnistT10k(), 2_000, 7);
      const testData = tensorsOf(test, [784]);
      const again = await evaluateVersion(fresh, last.version, testData);
      tf.dispose([testData.xs, testData.ys]);
      expect(again.accuracy).toBe(last.accuracy);
      expect(again.loss).toBeCloseTo(last.loss, 6);
      const rounds_ = await admin.listRounds(result.taskId);
      expect(rounds_.filter((r) => r.status === 'closed')).toHaveLength(result.roundsToTarget!);
    }, 240_000);
  }
});

describe('a round trained on worker threads', () => {
  it('trains the same clients to the same model as one thread, up to the order the updates were summed in', async () => {
    const run = async (threads: number) => {
      const reports: RoundReport[] = [];
      await simulate({
        baseUrl,
        adminToken,
        clients: 6,
        fraction: 1,
        rounds: 2,
        partition: 'dirichlet',
        model: 'mlp',
        epochs: 1,
        batchSize: 10,
        learningRate: 0.1,
        seed: 11,
        threads,
        onRound: (r) => reports.push(r),
      });
      return reports;
    };
    const one = await run(0);
    const two = await run(2);
    expect(two.map((r) => [r.round, r.participants, r.examples])).toEqual(one.map((r) => [r.round, r.participants, r.examples]));
    // Each client's Δ is seeded by (run, client, round), whichever thread trains it: only the sum's order differs.
    for (const [i, r] of two.entries()) expect(Math.abs(r.accuracy - one[i]!.accuracy)).toBeLessThanOrEqual(0.002);
    expect(two.map((r) => r.bytesUp)).toEqual(one.map((r) => r.bytesUp));
  }, 120_000);
});
