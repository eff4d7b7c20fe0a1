import { describe, expect, it } from 'vitest';
import { CredentialCache, type StoredCredential } from './credentials.ts';

function fixture(rows: Record<string, StoredCredential>) {
  const reads: string[] = [];
  const cache = new CredentialCache({
    load: async (id) => {
      reads.push(id);
      const r = rows[id];
      return r ? { ...r } : undefined;
    },
    ttlMs: 1_000,
    maxEntries: 2,
  });
  return { cache, reads, rows };
}

const live: StoredCredential = { taskId: 't1', tokenHash: 'aa', expiresAt: null, revokedAt: null };

describe('client credentials', () => {
  it('accepts the right secret for its own task, and tells every failure apart', async () => {
    const { cache } = fixture({ c1: live, c2: { ...live, revokedAt: 5 }, c3: { ...live, expiresAt: 100 } });
    expect(await cache.check('t1', 'c1', 'aa', 0)).toEqual({ ok: true });
    expect(await cache.check('t1', 'c1', 'ab', 0)).toMatchObject({ ok: false, code: 'unauthorized' });
    expect(await cache.check('t1', 'nobody', 'aa', 0)).toMatchObject({ ok: false, code: 'unauthorized' });
    expect(await cache.check('t2', 'c1', 'aa', 0)).toMatchObject({ ok: false, code: 'forbidden' });
    expect(await cache.check('t1', 'c2', 'aa', 0)).toMatchObject({ ok: false, code: 'token_revoked' });
    expect(await cache.check('t1', 'c3', 'aa', 99)).toEqual({ ok: true });
    expect(await cache.check('t1', 'c3', 'aa', 100)).toMatchObject({ ok: false, code: 'token_expired' });
    // A wrong secret is refused before anything is said about the client's state.
    expect(await cache.check('t1', 'c2', 'zz', 0)).toMatchObject({ ok: false, code: 'unauthorized' });
  });

  it('reads D1 once per client until the row is dropped or its time is up', async () => {
    const { cache, reads, rows } = fixture({ c1: { ...live } });
    for (let i = 0; i < 5; i++) await cache.check('t1', 'c1', 'aa', i);
    expect(reads).toEqual(['c1']);
    // Revoked in D1 and dropped here: refused on the very next call.
    rows.c1 = { ...live, revokedAt: 10 };
    cache.forget('c1');
    expect(await cache.check('t1', 'c1', 'aa', 10)).toMatchObject({ code: 'token_revoked' });
    // Rotated in D1 without a drop: the old row serves until the TTL, then the new hash applies.
    rows.c1 = { ...live, tokenHash: 'bb' };
    expect(await cache.check('t1', 'c1', 'bb', 500)).toMatchObject({ code: 'unauthorized' });
    expect(await cache.check('t1', 'c1', 'bb', 1_010)).toEqual({ ok: true });
    expect(reads).toEqual(['c1', 'c1', 'c1']);
  });

  it('keeps at most maxEntries rows and never caches unknown ids', async () => {
    const { cache, reads } = fixture({ a: live, b: live, c: live });
    for (const id of ['a', 'b', 'x', 'y', 'a', 'b']) await cache.check('t1', id, 'aa', 0);
    expect(reads).toEqual(['a', 'b', 'x', 'y']); // made-up ids pushed nothing out
    await cache.check('t1', 'c', 'aa', 0); // evicts a (least recently used)
    await cache.check('t1', 'a', 'aa', 0);
    expect(reads).toEqual(['a', 'b', 'x', 'y', 'c', 'a']);
  });
});
