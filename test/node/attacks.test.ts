/**
 * Byzantine clients, test-suite size: 10 virtual clients on Dirichlet(0.5) MNIST, 2 of them
 * sending Gaussian noise (σ = 10) instead of updates, 8 rounds of 784-64-10. FedAvg must visibly
 * collapse (proof the attack works); median, trimmed mean (β = 0.2) and Multi-Krum (f = 2, m = 8)
 * must each end within 3 points of their own clean run. The full-size experiment (100 clients) is
 * `npm run simulate -- --malicious 0.2 …`, recorded in test/sim/README.md.
 */
import { describe, expect, inject, it } from 'vitest';
import { simulate, type SimulationOptions } from '../sim/runner.ts';

const base: SimulationOptions = {
  baseUrl: inject('fedgeUrl'), adminToken: inject('fedgeAdminToken'),
  clients: 10, fraction: 1, rounds: 8, partition: 'dirichlet', alpha: 0.5, model: 'mlp', epochs: 1, batchSize: 10, learningRate: 0.1, seed: 3,
};
const gaussian = { fraction: 0.2, attack: 'gaussian' as const, sigma: 10 };

async function finalAccuracy(o: Partial<SimulationOptions>): Promise<number> {
  const { reports } = await simulate({ ...base, ...o });
  return reports[reports.length - 1]!.accuracy;
}

describe('20% Gaussian attackers (σ = 10)', () => {
  it('break FedAvg', async () => {
    const attacked = await finalAccuracy({ malicious: gaussian });
    console.log(`fedavg attacked: ${attacked.toFixed(4)}`);
    expect(attacked).toBeLessThan(0.5);
  }, 180_000);

  const robust: [string, SimulationOptions['strategy']][] = [
    ['median', { name: 'median' }],
    ['trimmed mean β = 0.2', { name: 'trimmedmean', beta: 0.2 }],
    ['Multi-Krum f = 2, m = 8', { name: 'krum', f: 2, m: 8 }],
  ];
  for (const [label, strategy] of robust) {
    it(`do not move ${label} more than 3 points from its clean run`, async () => {
      const clean = await finalAccuracy({ strategy: strategy! });
      const attacked = await finalAccuracy({ strategy: strategy!, malicious: gaussian });
      console.log(`${label}: clean ${clean.toFixed(4)}, attacked ${attacked.toFixed(4)}`);
      expect(clean).toBeGreaterThan(0.8);
      expect(attacked).toBeGreaterThanOrEqual(clean - 0.03);
    }, 300_000);
  }
});
