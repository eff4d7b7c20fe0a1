import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rate-limit.ts';

describe('token buckets', () => {
  it('allows a burst of capacity, then refills at the given rate, per key', () => {
    const b = new TokenBuckets({ capacity: 3, refillPerSecond: 2, maxKeys: 10 });
    expect([b.take('a', 0), b.take('a', 0), b.take('a', 0)]).toEqual([0, 0, 0]);
    expect(b.take('a', 0)).toBe(500); // one token back after 1/2 s
    expect(b.take('b', 0)).toBe(0); // another key is unaffected
    expect(b.take('a', 499)).toBe(2); // 0.998 tokens: 2 ms to go
    expect(b.take('a', 500)).toBe(0);
    expect(b.take('a', 500)).toBe(500);
    expect([b.take('a', 10_000), b.take('a', 10_000), b.take('a', 10_000), b.take('a', 10_000)]).toEqual([0, 0, 0, 500]); // refills up to capacity only
  });

  it('a refused request costs nothing', () => {
    const b = new TokenBuckets({ capacity: 1, refillPerSecond: 1, maxKeys: 10 });
    expect(b.take('a', 0)).toBe(0);
    for (let i = 0; i < 100; i++) expect(b.take('a', 10 * i)).toBe(1000 - 10 * i);
    expect(b.take('a', 1000)).toBe(0);
  });

  it('tracks a bounded number of keys, dropping the least recently seen', () => {
    const b = new TokenBuckets({ capacity: 1, refillPerSecond: 0.001, maxKeys: 2 });
    expect([b.take('a', 0), b.take('b', 0)]).toEqual([0, 0]);
    expect(b.take('a', 1)).toBeGreaterThan(0); // a is now the most recent
    expect(b.take('c', 2)).toBe(0); // evicts b
    expect(b.take('b', 3)).toBe(0); // b starts full again; evicts a
    expect(b.take('c', 4)).toBeGreaterThan(0);
  });
});
