/**
 * Secure aggregation through the real platform (wrangler dev) with real tfjs on real MNIST: virtual
 * clients run every phase of SecAgg+ through the SDK's `participate()`, concurrently, and the
 * published versions learn as plaintext FedAvg's do: the same seed trains the same Δs (each job's
 * shuffles are seeded by run, client and round, however the jobs interleave), so the two runs
 * differ only by SecAgg's clipping and quantization. 30 rounds of each: test/sim/README.md.
 */
import { describe, expect, inject, it } from 'vitest';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import { type RoundReport, simulate } from '../sim/runner.ts';

const baseUrl = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');

describe('SecAgg+ on real MNIST with virtual clients (784-64-10)', () => {
  it('every round publishes from masked inputs only, and the model learns as plaintext FedAvg does', async () => {
    const reports: RoundReport[] = [];
    const plaintext: RoundReport[] = [];
    const options = {
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
    } as const;
    const result = await simulate({ ...options, secureAggregation: { clipRange: 1 }, onRound: (r) => reports.push(r) });
    await simulate({ ...options, onRound: (r) => plaintext.push(r) });
    const line = (rs: RoundReport[]) => rs.map((r) => `r${r.round}=${r.accuracy.toFixed(4)}`).join(' ');
    console.log(`K=10 C=0.5: SecAgg+ ${line(reports)}, plaintext ${line(plaintext)}`);
    expect(reports.map((r) => r.version)).toEqual([1, 2]);
    expect(reports.at(-1)!.accuracy).toBeGreaterThan(0.8);
    // The bar is 0.5 points at the same rounds; at this seed the two agree to the test example.
    for (const [i, r] of reports.entries()) expect(Math.abs(r.accuracy - plaintext[i]!.accuracy)).toBeLessThanOrEqual(0.005);
    const admin = new FedgeAdmin({ baseUrl, token: adminToken });
    const task = await admin.getTask(result.taskId);
    expect(task.secureAggregation).toMatchObject({ clipRange: 1, phaseSeconds: 30 });
    const m = await admin.getManifest(result.taskId, 2);
    expect(m.participants).toBe(5);
    // The example count of a version comes from the unmasked sum of the weights: 5 clients × 800 images.
    expect(m.numExamples).toBe(4000);
  }, 180_000);
});
