/**
 * The simulator's per-job Math.random: jobs that interleave (secure aggregation runs a round's
 * clients concurrently) draw exactly what they draw when run one after another, and calls outside
 * any job keep drawing from the run's generator.
 */
import { describe, expect, it } from 'vitest';
import { rng } from '../shared/random.ts';
import { withJobRandom } from '../sim/clients.ts';

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3)));

/** A job that draws `n` numbers with awaits (timers, microtasks) between them, as tfjs's fit does. */
async function draws(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Math.random());
    await (i % 2 ? tick() : Promise.resolve());
  }
  return out;
}

describe('withJobRandom', () => {
  it('gives concurrent jobs the numbers they draw one after another, and restores Math.random', async () => {
    const original = Math.random;
    const sequential: number[][] = [];
    for (const seed of [1, 2, 3]) sequential.push(await withJobRandom(seed, () => draws(20)));
    expect(Math.random).toBe(original);
    const concurrent = await Promise.all([1, 2, 3].map((seed) => withJobRandom(seed, () => draws(20))));
    expect(concurrent).toEqual(sequential);
    expect(sequential[0]![0]).toBe(rng(1)());
    expect(new Set(sequential.map((s) => s[0])).size).toBe(3);
    expect(Math.random).toBe(original);
  });

  it('leaves calls outside a job to the generator installed before the first job started', async () => {
    const original = Math.random;
    Math.random = rng(99);
    try {
      const expected = rng(99);
      const job = withJobRandom(5, () => draws(10));
      const outside = [Math.random(), Math.random()];
      await job;
      expect(outside).toEqual([expected(), expected()]);
    } finally {
      Math.random = original;
    }
  });
});
