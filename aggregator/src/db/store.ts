/**
 * @module D1 queries (drizzle-orm) used by the edge API and the master aggregator.
 */
import { and, asc, between, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import { type DrizzleD1Database, drizzle } from 'drizzle-orm/d1';
import * as schema from './schema.ts';
import { adminTokens, clients, evaluationMetrics, modelVersions, retiredAdminSecrets, roundParticipants, rounds, tasks } from './schema.ts';

export type Db = DrizzleD1Database<typeof schema>;

export function database(d1: D1Database): Db {
  return drizzle(d1, { schema });
}

export async function getTask(db: Db, taskId: string): Promise<schema.TaskRow | undefined> {
  return db.select().from(tasks).where(eq(tasks.id, taskId)).get();
}

export async function listTasks(db: Db, limit: number, before?: number) {
  const q = db
    .select({
      id: tasks.id,
      name: tasks.name,
      status: tasks.status,
      numParams: tasks.numParams,
      currentVersion: tasks.currentVersion,
      createdAt: tasks.createdAt,
    })
    .from(tasks);
  return (before === undefined ? q : q.where(lt(tasks.createdAt, new Date(before)))).orderBy(desc(tasks.createdAt)).limit(limit).all();
}

/** The credential fields of a client, for authenticating its calls. */
export async function getClientCredential(db: Db, clientId: string) {
  return db
    .select({ taskId: clients.taskId, tokenHash: clients.tokenHash, expiresAt: clients.expiresAt, revokedAt: clients.revokedAt })
    .from(clients)
    .where(eq(clients.id, clientId))
    .get();
}

export async function getClient(db: Db, taskId: string, clientId: string): Promise<schema.ClientRow | undefined> {
  return db
    .select()
    .from(clients)
    .where(and(eq(clients.taskId, taskId), eq(clients.id, clientId)))
    .get();
}

/** A task's clients, newest first (`before`: created before this time, ms). */
export async function listClients(db: Db, taskId: string, limit: number, before?: number): Promise<schema.ClientRow[]> {
  const where = before === undefined ? eq(clients.taskId, taskId) : and(eq(clients.taskId, taskId), lt(clients.createdAt, new Date(before)));
  return db.select().from(clients).where(where).orderBy(desc(clients.createdAt)).limit(limit).all();
}

/** Revokes a client for good (the first revocation time is kept); returns the row. */
export async function revokeClient(db: Db, taskId: string, clientId: string, at: Date): Promise<schema.ClientRow | undefined> {
  return db
    .update(clients)
    .set({ revokedAt: sql`coalesce(${clients.revokedAt}, ${at.getTime()})` })
    .where(and(eq(clients.taskId, taskId), eq(clients.id, clientId)))
    .returning()
    .get();
}

/** Replaces a live client's token hash and expiry; undefined when the client is unknown or revoked. */
export async function rotateClientToken(
  db: Db,
  taskId: string,
  clientId: string,
  tokenHash: string,
  expiresAt: Date | null,
  at: Date,
): Promise<schema.ClientRow | undefined> {
  return db
    .update(clients)
    .set({ tokenHash, expiresAt, rotatedAt: at })
    .where(and(eq(clients.taskId, taskId), eq(clients.id, clientId), isNull(clients.revokedAt)))
    .returning()
    .get();
}

export async function getAdminToken(db: Db, id: string): Promise<schema.AdminTokenRow | undefined> {
  return db.select().from(adminTokens).where(eq(adminTokens.id, id)).get();
}

export async function listAdminTokens(db: Db): Promise<schema.AdminTokenRow[]> {
  return db.select().from(adminTokens).orderBy(desc(adminTokens.createdAt)).all();
}

export async function revokeAdminToken(db: Db, id: string, at: Date): Promise<schema.AdminTokenRow | undefined> {
  return db
    .update(adminTokens)
    .set({ revokedAt: sql`coalesce(${adminTokens.revokedAt}, ${at.getTime()})` })
    .where(eq(adminTokens.id, id))
    .returning()
    .get();
}

/** Whether this value of the ADMIN_TOKEN secret (its SHA-256) was retired by a rotation. */
export async function isRetiredAdminSecret(db: Db, tokenHash: string): Promise<boolean> {
  return (
    (await db.select({ at: retiredAdminSecrets.retiredAt }).from(retiredAdminSecrets).where(eq(retiredAdminSecrets.tokenHash, tokenHash)).get()) !== undefined
  );
}

export async function retireAdminSecret(db: Db, tokenHash: string, at: Date): Promise<void> {
  await db.insert(retiredAdminSecrets).values({ tokenHash, retiredAt: at }).onConflictDoNothing();
}

export async function getVersion(db: Db, taskId: string, version: number): Promise<schema.ModelVersionRow | undefined> {
  return db
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.taskId, taskId), eq(modelVersions.version, version)))
    .get();
}

export async function listVersions(db: Db, taskId: string, limit: number, before?: number) {
  const where = before === undefined ? eq(modelVersions.taskId, taskId) : and(eq(modelVersions.taskId, taskId), lt(modelVersions.version, before));
  return db.select().from(modelVersions).where(where).orderBy(desc(modelVersions.version)).limit(limit).all();
}

export async function listRounds(db: Db, taskId: string, limit: number, before?: number) {
  const where = before === undefined ? eq(rounds.taskId, taskId) : and(eq(rounds.taskId, taskId), lt(rounds.round, before));
  return db.select().from(rounds).where(where).orderBy(desc(rounds.round)).limit(limit).all();
}

export async function getRound(db: Db, taskId: string, round: number) {
  return db
    .select()
    .from(rounds)
    .where(and(eq(rounds.taskId, taskId), eq(rounds.round, round)))
    .get();
}

export async function listParticipants(db: Db, taskId: string, round: number) {
  return db
    .select({
      clientId: roundParticipants.clientId,
      numExamples: roundParticipants.numExamples,
      metrics: roundParticipants.metrics,
      acceptedAt: roundParticipants.acceptedAt,
    })
    .from(roundParticipants)
    .where(and(eq(roundParticipants.taskId, taskId), eq(roundParticipants.round, round)))
    .orderBy(asc(roundParticipants.acceptedAt))
    .all();
}

/** Whether a client has had an update accepted in a finished round of the task. */
export async function hasParticipated(db: Db, taskId: string, clientId: string): Promise<boolean> {
  const row = await db
    .select({ round: roundParticipants.round })
    .from(roundParticipants)
    .where(and(eq(roundParticipants.taskId, taskId), eq(roundParticipants.clientId, clientId)))
    .limit(1)
    .get();
  return row !== undefined;
}

export interface FederatedEvaluation {
  /** Clients that reported on this version. */
  clients: number;
  /** Examples they evaluated on (the largest count any metric was reported with). */
  numExamples: number;
  /** Example-weighted means over the clients that reported each metric. */
  metrics: Record<string, number>;
}

/** Replaces one client's evaluation of one version (one D1 batch: delete, then insert). */
export async function putEvaluation(
  db: Db,
  taskId: string,
  version: number,
  clientId: string,
  numExamples: number,
  metrics: Record<string, number>,
): Promise<void> {
  const reportedAt = new Date();
  const rows = Object.entries(metrics).map(([name, value]) => ({ taskId, version, clientId, name, value, numExamples, reportedAt }));
  const where = and(eq(evaluationMetrics.taskId, taskId), eq(evaluationMetrics.version, version), eq(evaluationMetrics.clientId, clientId));
  // 7 columns: at most 14 rows per statement under D1's 100 bound parameters.
  const inserts = [];
  for (let i = 0; i < rows.length; i += 14) inserts.push(db.insert(evaluationMetrics).values(rows.slice(i, i + 14)));
  await db.batch([db.delete(evaluationMetrics).where(where), ...inserts]);
}

/** Example-weighted federated evaluation of each of the given versions (absent when nobody reported). */
export async function federatedEvaluations(db: Db, taskId: string, versions: number[]): Promise<Map<number, FederatedEvaluation>> {
  const out = new Map<number, FederatedEvaluation>();
  if (versions.length === 0) return out;
  const rows = await db
    .select({
      version: evaluationMetrics.version,
      name: evaluationMetrics.name,
      mean: sql<number>`sum(${evaluationMetrics.value} * ${evaluationMetrics.numExamples}) / sum(${evaluationMetrics.numExamples})`,
      examples: sql<number>`sum(${evaluationMetrics.numExamples})`,
      clients: sql<number>`count(*)`,
    })
    .from(evaluationMetrics)
    // A range, not IN (...): a page of 200 versions would pass D1's 100 bound parameters (found by the chaos run).
    .where(and(eq(evaluationMetrics.taskId, taskId), between(evaluationMetrics.version, Math.min(...versions), Math.max(...versions))))
    .groupBy(evaluationMetrics.version, evaluationMetrics.name)
    .all();
  const wanted = new Set(versions);
  for (const r of rows) {
    if (!wanted.has(r.version)) continue;
    const e = out.get(r.version) ?? { clients: 0, numExamples: 0, metrics: {} };
    e.metrics[r.name] = r.mean;
    e.clients = Math.max(e.clients, r.clients);
    e.numExamples = Math.max(e.numExamples, r.examples);
    out.set(r.version, e);
  }
  return out;
}

export async function setServerMetrics(db: Db, taskId: string, version: number, metrics: Record<string, number>): Promise<void> {
  await db
    .update(modelVersions)
    .set({ serverMetrics: metrics })
    .where(and(eq(modelVersions.taskId, taskId), eq(modelVersions.version, version)));
}

export type NewRound = typeof rounds.$inferInsert;
export type NewVersion = typeof modelVersions.$inferInsert;
export type NewParticipant = typeof roundParticipants.$inferInsert;

/**
 * Bytes of participants' JSON per insert statement. D1 allows 100 bound parameters per statement
 * and about 1,000 statements per invocation, and a value of up to 2 MB: the rows go in as one JSON
 * array parameter read by `json_each`, so 100,000 participants take a few dozen statements
 * (16-row inserts took 6,250).
 */
const PARTICIPANT_JSON_BYTES = 512 * 1024;

/** The participants as JSON arrays of `{c, n, m, a}` (client, examples, metrics as JSON text, accepted at ms), each under PARTICIPANT_JSON_BYTES. */
export function participantChunks(participants: readonly NewParticipant[]): string[] {
  const chunks: string[] = [];
  let current: string[] = [];
  let bytes = 2;
  for (const p of participants) {
    const row = JSON.stringify({ c: p.clientId, n: p.numExamples, m: p.metrics == null ? null : JSON.stringify(p.metrics), a: p.acceptedAt.getTime() });
    if (current.length > 0 && bytes + row.length + 1 > PARTICIPANT_JSON_BYTES) {
      chunks.push(`[${current.join(',')}]`);
      current = [];
      bytes = 2;
    }
    current.push(row);
    bytes += row.length + 1;
  }
  if (current.length > 0) chunks.push(`[${current.join(',')}]`);
  return chunks;
}

/**
 * Records a finished round in one D1 batch (one transaction): its row, its participants and, for
 * a closed round, the version it produced and the task's current version. Every insert ignores
 * an existing row, so a publish retried after a crash writes nothing twice.
 */
export async function recordRound(db: Db, round: NewRound, participants: NewParticipant[], version: NewVersion | null, status?: 'finished'): Promise<void> {
  const statements = [];
  if (version) {
    statements.push(db.insert(modelVersions).values(version).onConflictDoNothing());
    // `finished` (the privacy budget is spent) does not replace `stopped`: the operator's stop stands.
    const finished = status ? { status: sql`CASE WHEN ${tasks.status} = 'stopped' THEN ${tasks.status} ELSE ${status} END` } : {};
    statements.push(
      db
        .update(tasks)
        .set({ currentVersion: sql`max(${tasks.currentVersion}, ${version.version})`, ...finished })
        .where(eq(tasks.id, round.taskId)),
    );
  }
  statements.push(db.insert(rounds).values(round).onConflictDoNothing());
  for (const rows of participantChunks(participants)) {
    statements.push(
      db
        .insert(roundParticipants)
        // The table's columns in order: task_id, round, client_id, num_examples, metrics, accepted_at.
        // `WHERE true`: SQLite would read ON CONFLICT after a bare FROM as a join's ON (its documented parsing ambiguity).
        .select(
          sql`SELECT ${round.taskId}, ${round.round}, json_extract(j.value, '$.c'), json_extract(j.value, '$.n'), json_extract(j.value, '$.m'), json_extract(j.value, '$.a') FROM json_each(${rows}) AS j WHERE true`,
        )
        .onConflictDoNothing(),
    );
  }
  const [first, ...rest] = statements;
  if (first) await db.batch([first, ...rest]);
}
