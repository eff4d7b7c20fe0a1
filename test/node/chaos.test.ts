/**
 * The chaos run of test/chaos/chaos.ts, small: the runtime (wrangler dev + workerd) is killed with
 * SIGKILL at random instants while clients submit and retry. `npm run chaos` does 100 kills.
 */
import { expect, it } from 'vitest';
import { runChaos } from '../chaos/chaos.ts';

it('kill -9 at random instants: every acknowledged update counted exactly once, every version present, hashed and exact', async () => {
  const r = await runChaos({ kills: 4, clients: 6, clientsPerRound: 3, seed: 5, minGapMs: 300, maxGapMs: 1_500 });
  console.log(`chaos: ${JSON.stringify(r)}`);
  expect(r).toMatchObject({ kills: 4, lost: 0, doubled: 0, missingVersions: 0, hashMismatches: 0, conflicts: 0 });
  expect(r.maxDeviation).toBeLessThanOrEqual(1e-6);
  // The run did something to check: updates acknowledged across several published rounds, through refused connections.
  expect(r.acknowledged).toBeGreaterThanOrEqual(6);
  expect(r.rounds).toBeGreaterThanOrEqual(2);
  expect(r.versions).toBe(r.rounds + 1);
  expect(r.retries).toBeGreaterThan(0);
}, 240_000);
