/**
 * @module Per-key token buckets: a client may burst `capacity` requests, then `refillPerSecond`.
 *
 * Kept by each task's Durable Object, which sees every authenticated call of its clients (check-in,
 * submit, downloads, evaluations), so the limit is exact, not per isolate or per location. Pure:
 * time is an argument.
 */

export interface RateLimitOptions {
  /** Requests a key may make at once after being idle. */
  capacity: number;
  /** Requests per second a key earns back. */
  refillPerSecond: number;
  /** Keys tracked at most; the least recently seen are dropped first (a dropped key starts full). */
  maxKeys: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  readonly options: RateLimitOptions;

  constructor(options: RateLimitOptions) {
    if (!(options.capacity >= 1 && options.refillPerSecond > 0 && options.maxKeys >= 1)) throw new Error(`invalid rate limit ${JSON.stringify(options)}`);
    this.options = options;
  }

  /**
   * Takes one token for `key` at time `now` (ms). Returns 0 when the request may proceed, else the
   * milliseconds until a token will be available (the request is refused and costs nothing).
   */
  take(key: string, now: number): number {
    const { capacity, refillPerSecond, maxKeys } = this.options;
    const prev = this.buckets.get(key);
    const tokens = prev ? Math.min(capacity, prev.tokens + ((now - prev.at) / 1000) * refillPerSecond) : capacity;
    if (prev)
      this.buckets.delete(key); // re-inserted below: most recently seen last
    else if (this.buckets.size >= maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return Math.ceil(((1 - tokens) / refillPerSecond) * 1000);
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    return 0;
  }
}
