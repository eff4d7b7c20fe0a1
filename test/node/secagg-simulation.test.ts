/**
 * Secure aggregation through the real platform (wrangler dev) with real tfjs on real MNIST: virtual
 * clients run every phase of SecAgg+ through the SDK's `participate()`, concurrently, and the
 * published versions learn. The comparison with plaintext FedAvg at scale is a simulation
 * (`npm run simulate -- --secagg`; figures in test/sim/README.md).
 */
import { describe, expect, inject, it } from 'vitest';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import { type RoundReport, simulate } from '../sim/runner.ts';

const baseUrl = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');

describe('SecAgg+ on real MNIST with virtual clients (784-64-10)', () => {
  it('every round publishes from masked inputs only, and the model learns', async () => {
    const reports: RoundReport[] = [];
    const result = await simulate({
      baseUrl,
      adminToken,
      clients: 10,
      fraction: 0.5,
      rounds: 2,
      partition: 'iid',
      model: 'mlp',
      epochs: 1,
      batchSize: 10,
      learningRate: 0.1,
      seed: 3,
      threads: 0,
      secureAggregation: { clipRange: 1 },
      onRound: (r) => reports.push(r),
    });
    console.log(`SecAgg+ K=10 C=0.5: ${reports.map((r) => `r${r.round}=${r.accuracy.toFixed(3)}`).join(' ')}`);
    expect(reports.map((r) => r.version)).toEqual([1, 2]);
    expect(reports.at(-1)!.accuracy).toBeGreaterThan(0.8);
    const admin = new FedgeAdmin({ baseUrl, token: adminToken });
    const task = await admin.getTask(result.taskId);
    expect(task.secureAggregation).toMatchObject({ clipRange: 1, phaseSeconds: 30 });
    const m = await admin.getManifest(result.taskId, 2);
    expect(m.participants).toBe(5);
    // The example count of a version comes from the unmasked sum of the weights: 5 clients × 800 images.
    expect(m.numExamples).toBe(4000);
  }, 180_000);
});
