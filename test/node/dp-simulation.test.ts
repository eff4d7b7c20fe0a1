/**
 * DP-FedAvg through the real platform, in its test-suite size: 100 virtual clients on real MNIST
 * (80 training images each), the server drawing each with probability q at check-in (Poisson
 * sampling), clipping, noising the sum and recording ε on every version. The full accuracy-vs-ε
 * table is a benchmark (test/sim/dp-table.ts; figures in test/sim/README.md).
 */
import { describe, expect, inject, it } from 'vitest';
import { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import { sampledGaussianEpsilon } from '../../client-sdk/src/protocol/rdp.ts';
import { type RoundReport, simulate } from '../sim/runner.ts';

const baseUrl = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');

describe('DP-FedAvg on real MNIST with 100 virtual clients (784-64-10)', () => {
  it('learns above a floor while the server samples, clips and noises, and every version records ε as the accountant computes it', async () => {
    const q = 0.5;
    const z = 0.5;
    const S = 1;
    const reports: RoundReport[] = [];
    const result = await simulate({
      baseUrl,
      adminToken,
      clients: 100,
      fraction: q,
      rounds: 3,
      partition: 'iid',
      model: 'mlp',
      epochs: 1,
      batchSize: 10,
      learningRate: 0.1,
      seed: 11,
      threads: 2,
      privacy: { mode: 'central', noiseMultiplier: z, clipNorm: S, samplingRate: q },
      // A DP round closes at its deadline; clients still training then are drop-outs (late). How many
      // depends on what else the machine runs (the suite runs files in parallel on 2 cores), so the
      // test reports them instead of bounding them, and leaves enough time that most finish.
      deadlineSeconds: 20,
      onRound: (r) => reports.push(r),
    });
    console.log(
      `DP-FedAvg q=${q} z=${z} S=${S}: ${reports.map((r) => `r${r.round}=${r.accuracy.toFixed(3)} (ε ${r.epsilon?.toFixed(2)}, ${r.sampled} drawn, ${r.late} late)`).join(' ')}`,
    );
    expect(reports.map((r) => r.version)).toEqual([1, 2, 3]);
    for (const [i, r] of reports.entries()) {
      expect(r.epsilon).toBe(sampledGaussianEpsilon(q, z, i + 1, 1e-5).epsilon);
      // Binomial(100, 0.5) draws: 50 ± 5 (6σ bounds); every drawn client either took part or was late.
      expect(r.sampled).toBeGreaterThanOrEqual(20);
      expect(r.sampled).toBeLessThanOrEqual(80);
      expect(r.participants + r.late!).toBe(r.sampled);
      expect(r.participants).toBeGreaterThan(0);
    }
    expect(reports.at(-1)!.accuracy).toBeGreaterThan(0.6);
    const admin = new FedgeAdmin({ baseUrl, token: adminToken });
    const m = await admin.getManifest(result.taskId, 3);
    expect(m.privacy).toMatchObject({ mode: 'central', noiseMultiplier: z, clipNorm: S, samplingRate: q, rounds: 3, delta: 1e-5, clipping: 'server' });
    expect(m.strategy?.name).toBe('fedavg');
    const task = await admin.getTask(result.taskId);
    expect(task.privacySpent).toMatchObject({ rounds: 3, epsilon: m.privacy!.epsilon, exhausted: false });
  }, 240_000);
});
