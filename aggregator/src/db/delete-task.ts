/**
 * @module Deleting a task's records from D1 and its weights from R2. Everything under the task
 * goes: its clients (and so their tokens), enrollment keys, identity providers, rounds and their
 * participants, federated evaluations, version metadata, and last the task row itself; in R2,
 * every blob under `tasks/<id>/`. Each step removes what is left, so a delete cut off halfway is
 * finished by running it again.
 */
import { eq } from 'drizzle-orm';
import { clients, enrollmentKeys, evaluationMetrics, identityProviders, modelVersions, roundParticipants, rounds, tasks } from './schema.ts';
import type { Db } from './store.ts';

export interface Deleted {
  versions: number;
  rounds: number;
  clients: number;
  blobs: number;
}

/** Deletes the task's D1 rows, children first and the task row last, in one batch (one transaction). */
export async function deleteTaskRows(db: Db, taskId: string): Promise<Omit<Deleted, 'blobs'>> {
  const [, , roundRows, versions, , , clientRows] = await db.batch([
    db.delete(evaluationMetrics).where(eq(evaluationMetrics.taskId, taskId)),
    db.delete(roundParticipants).where(eq(roundParticipants.taskId, taskId)),
    db.delete(rounds).where(eq(rounds.taskId, taskId)).returning({ r: rounds.round }),
    db.delete(modelVersions).where(eq(modelVersions.taskId, taskId)).returning({ v: modelVersions.version }),
    db.delete(enrollmentKeys).where(eq(enrollmentKeys.taskId, taskId)),
    db.delete(identityProviders).where(eq(identityProviders.taskId, taskId)),
    db.delete(clients).where(eq(clients.taskId, taskId)).returning({ id: clients.id }),
    db.delete(tasks).where(eq(tasks.id, taskId)),
  ]);
  return { versions: versions.length, rounds: roundRows.length, clients: clientRows.length };
}

/** Deletes every R2 object under the task's prefix (its version blobs), 1,000 keys per call; how many. */
export async function deleteTaskBlobs(bucket: R2Bucket, taskId: string): Promise<number> {
  let deleted = 0;
  for (;;) {
    const page = await bucket.list({ prefix: `tasks/${taskId}/`, limit: 1000 });
    if (page.objects.length === 0) return deleted;
    await bucket.delete(page.objects.map((o) => o.key));
    deleted += page.objects.length;
  }
}
