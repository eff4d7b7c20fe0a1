/**
 * @module A task's client credentials as its Durable Object checks them.
 *
 * D1 holds the client rows (token hash, expiry, revocation); this object caches them in memory, so
 * a client's calls cost one D1 read per object lifetime rather than one per request. Every isolate
 * asks the task's one object, so a revocation or rotation (which drops the cached row here) takes
 * effect at once everywhere, with no per-isolate cache left to outlive it. Pure: the D1 read is
 * injected, time is an argument.
 */
import type { TokenBuckets } from './rate-limit.ts';

export interface StoredCredential {
  taskId: string;
  /** SHA-256 (hex) of the token's secret part. */
  tokenHash: string;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** A D1 credential row (dates) as the checker takes it (ms). */
export function storedCredential(
  row: { taskId: string; tokenHash: string; expiresAt: Date | null; revokedAt: Date | null } | undefined,
): StoredCredential | undefined {
  return row && { taskId: row.taskId, tokenHash: row.tokenHash, expiresAt: row.expiresAt?.getTime() ?? null, revokedAt: row.revokedAt?.getTime() ?? null };
}

export type CredentialCheck = { ok: true } | { ok: false; code: 'unauthorized' | 'token_expired' | 'token_revoked' | 'forbidden'; message: string };

export interface CredentialCacheOptions {
  /** Reads one client's row (D1); undefined when there is none. */
  load: (clientId: string) => Promise<StoredCredential | undefined>;
  /** A cached row is re-read after this long, bounding staleness if a drop was ever missed. Default 5 min. */
  ttlMs?: number;
  /** Rows kept at most (least recently used dropped first). Default 20,000. */
  maxEntries?: number;
}

export class CredentialCache {
  private readonly rows = new Map<string, { row: StoredCredential; loadedAt: number }>();
  private readonly load: CredentialCacheOptions['load'];
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(options: CredentialCacheOptions) {
    this.load = options.load;
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.maxEntries = options.maxEntries ?? 20_000;
  }

  /** Checks a presented client token (its id and the SHA-256 of its secret) for the task in the path. */
  async check(taskId: string, clientId: string, secretHash: string, now: number): Promise<CredentialCheck> {
    return verifyCredential(await this.row(clientId, now), taskId, secretHash, now);
  }

  /** Drops a client's cached row (after a revocation or rotation in D1): its next call reads D1 again. */
  forget(clientId: string): void {
    this.rows.delete(clientId);
  }

  private async row(clientId: string, now: number): Promise<StoredCredential | undefined> {
    const hit = this.rows.get(clientId);
    if (hit && now - hit.loadedAt < this.ttlMs) {
      this.rows.delete(clientId);
      this.rows.set(clientId, hit); // most recently used last
      return hit.row;
    }
    const row = await this.load(clientId);
    // Unknown ids are not cached: a flood of made-up ids must not push real clients out.
    if (!row) return undefined;
    if (this.rows.size >= this.maxEntries) this.rows.delete(this.rows.keys().next().value!);
    this.rows.set(clientId, { row, loadedAt: now });
    return row;
  }
}

/**
 * Checks a stored credential against a presented secret's hash, for the task in the path. A wrong
 * secret is `unauthorized` before anything is said of the credential's state.
 */
export function verifyCredential(row: StoredCredential | undefined, taskId: string, secretHash: string, now: number, what = 'client token'): CredentialCheck {
  // Constant-time in the hash, so the comparison leaks nothing about the stored one.
  if (!row || !equalHex(row.tokenHash, secretHash)) return { ok: false, code: 'unauthorized', message: 'invalid token' };
  if (row.revokedAt !== null) return { ok: false, code: 'token_revoked', message: `this ${what} was revoked or replaced` };
  if (row.expiresAt !== null && now >= row.expiresAt)
    return { ok: false, code: 'token_expired', message: `this ${what} expired at ${new Date(row.expiresAt).toISOString()}` };
  if (row.taskId !== taskId) return { ok: false, code: 'forbidden', message: `this ${what} belongs to another task` };
  return { ok: true };
}

/** The answer to a client's call: one of the credential checks, or its rate limit. */
export type ClientAuth = CredentialCheck | { ok: false; code: 'rate_limited'; message: string; retryAfterSeconds: number };

/** A task's door: the client's credentials, then its request rate. */
export class ClientGate {
  private readonly cache: CredentialCache;
  private readonly buckets: TokenBuckets;

  constructor(cache: CredentialCache, buckets: TokenBuckets) {
    this.cache = cache;
    this.buckets = buckets;
  }

  async authenticate(taskId: string, clientId: string, secretHash: string, now: number): Promise<ClientAuth> {
    const check = await this.cache.check(taskId, clientId, secretHash, now);
    if (!check.ok) return check;
    const waitMs = this.buckets.take(clientId, now);
    if (waitMs === 0) return check;
    const { capacity, refillPerSecond } = this.buckets.options;
    return {
      ok: false,
      code: 'rate_limited',
      message: `too many requests from this client (burst ${capacity}, then ${refillPerSecond}/s)`,
      retryAfterSeconds: Math.ceil(waitMs / 1000),
    };
  }

  /** Drops a client's cached credentials after D1 changed them (revocation, rotation): effective at the next call. */
  forget(clientId: string): void {
    this.cache.forget(clientId);
  }
}

function equalHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
