/**
 * @module D1 queries of self-enrollment: enrollment keys, and the one insert that enrolls a device
 * within both caps (the key's and the task's) atomically.
 */
import { and, count, desc, eq, isNull, sql } from 'drizzle-orm';
import { clients, type EnrollmentKeyRow, enrollmentKeys, type IdentityProviderRow, identityProviders, tasks } from './schema.ts';
import type { Db } from './store.ts';

export type NewEnrollmentKey = typeof enrollmentKeys.$inferInsert;
export type NewClient = typeof clients.$inferInsert;

export async function createEnrollmentKey(db: Db, key: NewEnrollmentKey): Promise<EnrollmentKeyRow> {
  return (await db.insert(enrollmentKeys).values(key).returning().get())!;
}

export async function getEnrollmentKey(db: Db, id: string): Promise<EnrollmentKeyRow | undefined> {
  return db.select().from(enrollmentKeys).where(eq(enrollmentKeys.id, id)).get();
}

/** A task's enrollment keys, newest first, each with how many clients it enrolled. */
export async function listEnrollmentKeys(db: Db, taskId: string): Promise<(EnrollmentKeyRow & { enrolled: number })[]> {
  const keys = await db.select().from(enrollmentKeys).where(eq(enrollmentKeys.taskId, taskId)).orderBy(desc(enrollmentKeys.createdAt)).all();
  const counts = await db
    .select({ keyId: clients.enrollmentKeyId, n: count() })
    .from(clients)
    .where(eq(clients.taskId, taskId))
    .groupBy(clients.enrollmentKeyId)
    .all();
  const byKey = new Map(counts.map((r) => [r.keyId, r.n]));
  return keys.map((k) => ({ ...k, enrolled: byKey.get(k.id) ?? 0 }));
}

export async function enrolledBy(db: Db, keyId: string): Promise<number> {
  return (await db.select({ n: count() }).from(clients).where(eq(clients.enrollmentKeyId, keyId)).get())?.n ?? 0;
}

export async function clientsOfTask(db: Db, taskId: string): Promise<number> {
  return (await db.select({ n: count() }).from(clients).where(eq(clients.taskId, taskId)).get())?.n ?? 0;
}

/** Revokes a key for good (the first revocation time is kept); returns the row. */
export async function revokeEnrollmentKey(db: Db, taskId: string, id: string, at: Date): Promise<EnrollmentKeyRow | undefined> {
  return db
    .update(enrollmentKeys)
    .set({ revokedAt: sql`coalesce(${enrollmentKeys.revokedAt}, ${at.getTime()})` })
    .where(and(eq(enrollmentKeys.taskId, taskId), eq(enrollmentKeys.id, id)))
    .returning()
    .get();
}

/**
 * Inserts the client only while the task holds fewer than its `max_clients` and, for a key's
 * enrollment, the key has enrolled fewer than `keyCap`: one statement, so concurrent enrollments
 * cannot overshoot either cap (D1 runs each statement alone). True when the client was inserted.
 */
export async function enrollWithinCaps(db: Db, client: NewClient, keyCap?: number): Promise<boolean> {
  const c = client;
  const underKeyCap =
    keyCap === undefined || !c.enrollmentKeyId ? sql`1` : sql`(SELECT count(*) FROM ${clients} WHERE enrollment_key_id = ${c.enrollmentKeyId}) < ${keyCap}`;
  const result = await db.run(sql`
    INSERT INTO ${clients} (id, task_id, token_hash, label, created_at, expires_at, ttl_seconds, enrollment_key_id, subject)
    SELECT ${c.id}, ${c.taskId}, ${c.tokenHash}, ${c.label ?? null}, ${c.createdAt.getTime()}, ${c.expiresAt?.getTime() ?? null},
           ${c.ttlSeconds ?? null}, ${c.enrollmentKeyId ?? null}, ${c.subject ?? null}
    WHERE ${underKeyCap}
      AND (SELECT count(*) FROM ${clients} WHERE task_id = ${c.taskId}) < (SELECT max_clients FROM ${tasks} WHERE id = ${c.taskId})`);
  return result.meta.changes === 1;
}

export type NewIdentityProvider = typeof identityProviders.$inferInsert;

export async function createIdentityProvider(db: Db, provider: NewIdentityProvider): Promise<IdentityProviderRow> {
  return (await db.insert(identityProviders).values(provider).returning().get())!;
}

export async function listIdentityProviders(db: Db, taskId: string): Promise<IdentityProviderRow[]> {
  return db.select().from(identityProviders).where(eq(identityProviders.taskId, taskId)).orderBy(desc(identityProviders.createdAt)).all();
}

/** The task's live (not revoked) providers for an issuer. */
export async function providersFor(db: Db, taskId: string, issuer: string): Promise<IdentityProviderRow[]> {
  return db
    .select()
    .from(identityProviders)
    .where(and(eq(identityProviders.taskId, taskId), eq(identityProviders.issuer, issuer), isNull(identityProviders.revokedAt)))
    .all();
}

export async function revokeIdentityProvider(db: Db, taskId: string, id: string, at: Date): Promise<IdentityProviderRow | undefined> {
  return db
    .update(identityProviders)
    .set({ revokedAt: sql`coalesce(${identityProviders.revokedAt}, ${at.getTime()})` })
    .where(and(eq(identityProviders.taskId, taskId), eq(identityProviders.id, id)))
    .returning()
    .get();
}
