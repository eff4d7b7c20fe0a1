import { describe, expect, it } from 'vitest';
import { backoff, retryAfterMs } from './http.ts';

describe('retry timing', () => {
  it('backs off exponentially with jitter in [0.5, 1] of the cap, capped at 8 s', () => {
    expect([0, 1, 2, 3, 4, 5].map((a) => backoff(a, () => 1))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect([0, 1, 2].map((a) => backoff(a, () => 0))).toEqual([250, 500, 1000]);
  });

  it('reads Retry-After as seconds or an HTTP date, bounded to 60 s, and ignores garbage', () => {
    const h = (v: string) => new Headers({ 'retry-after': v });
    expect(retryAfterMs(h('3'))).toBe(3000);
    expect(retryAfterMs(h('0'))).toBe(0);
    expect(retryAfterMs(h('3600'))).toBe(60_000);
    const now = Date.parse('2026-11-25T10:00:00Z');
    expect(retryAfterMs(h('Wed, 25 Nov 2026 10:00:05 GMT'), now)).toBe(5000);
    expect(retryAfterMs(h('soon'))).toBeUndefined();
    expect(retryAfterMs(h('-4'))).toBeUndefined();
    expect(retryAfterMs(new Headers())).toBeUndefined();
  });
});
