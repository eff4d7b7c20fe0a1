/**
 * Byzantine clients, test-suite size: 10 virtual clients on Dirichlet(0.5) MNIST, 2 of them
 * attacking every round, 8 rounds of 784-64-10, seed 3 (fully reproducible). The three attacks of
 * the strategies issue: (a) Gaussian noise N(0, 10²) instead of an update, (b) the trained update
 * boosted ×10, (c) the trained update sign-flipped. FedAvg must visibly suffer (proof the attack
 * works); median, trimmed mean (β = 0.2) and Multi-Krum (f = 2, m = 8) must each end within 3 points
 * of their own clean run. The two measured misses are pinned to their band instead (3 to 10 points
 * below clean): a broken robust path (collapse, crash, server down) fails, and so does a run that
 * starts meeting the goal, so the docs get updated. The full-size experiment (100 clients)
 * is `npm run simulate -- --malicious 0.2 --attack …`, recorded in test/sim/strategies.md.
 */
import { describe, expect, inject, it } from 'vitest';
import { type SimulationOptions, simulate } from '../sim/runner.ts';

const base: SimulationOptions = {
  baseUrl: inject('fedgeUrl'),
  adminToken: inject('fedgeAdminToken'),
  clients: 10,
  fraction: 1,
  rounds: 8,
  partition: 'dirichlet',
  alpha: 0.5,
  model: 'mlp',
  epochs: 1,
  batchSize: 10,
  learningRate: 0.1,
  seed: 3,
};
type Malicious = NonNullable<SimulationOptions['malicious']>;
const attacks: Record<'gaussian' | 'boost' | 'signflip', Malicious> = {
  gaussian: { fraction: 0.2, attack: 'gaussian', sigma: 10 },
  boost: { fraction: 0.2, attack: 'boost', boost: 10 },
  signflip: { fraction: 0.2, attack: 'signflip' },
};

async function finalAccuracy(o: Partial<SimulationOptions>): Promise<number> {
  const { reports } = await simulate({ ...base, ...o });
  return reports[reports.length - 1]!.accuracy;
}

/** Each clean run once, shared by the tests that compare with it (tests in a file run in order). */
const cleanRuns = new Map<string, Promise<number>>();
function clean(label: string, strategy: SimulationOptions['strategy']): Promise<number> {
  if (!cleanRuns.has(label)) cleanRuns.set(label, finalAccuracy(strategy ? { strategy } : {}));
  return cleanRuns.get(label)!;
}

describe('FedAvg under 20% attackers (the attacks work)', () => {
  it('collapses under Gaussian noise (σ = 10)', async () => {
    const attacked = await finalAccuracy({ malicious: attacks.gaussian });
    console.log(`fedavg gaussian: ${attacked.toFixed(4)}`);
    expect(attacked).toBeLessThan(0.5);
  }, 180_000);

  it('collapses under ×10 boosted updates', async () => {
    const attacked = await finalAccuracy({ malicious: attacks.boost });
    console.log(`fedavg boost: ${attacked.toFixed(4)}`);
    expect(attacked).toBeLessThan(0.5);
  }, 180_000);

  it('loses more than 10 points to sign-flipped updates', async () => {
    const [before, attacked] = [await clean('fedavg', undefined), await finalAccuracy({ malicious: attacks.signflip })];
    console.log(`fedavg signflip: clean ${before.toFixed(4)}, attacked ${attacked.toFixed(4)}`);
    expect(before).toBeGreaterThan(0.85);
    expect(attacked).toBeLessThan(before - 0.1);
  }, 300_000);
});

const robust: [string, SimulationOptions['strategy']][] = [
  ['median', { name: 'median' }],
  ['trimmed mean β = 0.2', { name: 'trimmedmean', beta: 0.2 }],
  ['Multi-Krum f = 2, m = 8', { name: 'krum', f: 2, m: 8 }],
];
/**
 * Measured misses (seed 3): under sign-flipping, median ends at 0.8325 against its clean 0.9040 and
 * trimmed mean at 0.8370 against 0.9070 (still 5.4 points short for the median after 20 rounds).
 * With 2 of 10 label-skewed clients pushing the other way every round, the coordinate-wise
 * statistics are biased towards them; at full size (100 clients, all per round) trimmed mean
 * holds (0.8875 → 0.8665). See test/sim/strategies.md.
 */
const knownMisses = new Set(['signflip/median', 'signflip/trimmed mean β = 0.2']);

for (const [attackName, malicious] of Object.entries(attacks)) {
  describe(`20% ${attackName} attackers`, () => {
    for (const [label, strategy] of robust) {
      const miss = knownMisses.has(`${attackName}/${label}`);
      it(miss
        ? `move ${label} 3 to 10 points below its clean run (the known miss at this size, pinned)`
        : `do not move ${label} more than 3 points from its clean run`, async () => {
        const before = await clean(label, strategy);
        const attacked = await finalAccuracy({ strategy: strategy!, malicious });
        console.log(`${label} ${attackName}: clean ${before.toFixed(4)}, attacked ${attacked.toFixed(4)}`);
        expect(before).toBeGreaterThan(0.85);
        if (miss) {
          expect(attacked, 'still a miss, but no collapse').toBeGreaterThanOrEqual(before - 0.1);
          expect(attacked, 'now meets the goal: drop it from knownMisses and update the README and strategies.md').toBeLessThan(before - 0.03);
        } else {
          expect(attacked).toBeGreaterThanOrEqual(before - 0.03);
        }
      }, 300_000);
    }
  });
}
