/**
 * The participants list of a round, written to real D1 as JSON arrays read by json_each: a round
 * of 30,000 participants is a few statements (16-row inserts took 1,875, past D1's ~1,000 queries
 * per invocation), and every value comes back as it went in.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { database, getRound, listParticipants, type NewParticipant, participantChunks, recordRound } from '../../aggregator/src/db/store.ts';
import { createTask } from './helpers.ts';

describe('recording a round', () => {
  it('writes 30,000 participants in a few statements, values intact, and a retry writes nothing twice', async () => {
    const { id } = await createTask();
    const t0 = Date.UTC(2026, 11, 3, 12);
    const participants: NewParticipant[] = Array.from({ length: 30_000 }, (_, i) => ({
      taskId: id,
      round: 7,
      clientId: `c_${i.toString(16).padStart(32, '0')}`,
      numExamples: 1 + (i % 500),
      metrics: i % 3 === 0 ? null : { loss: i / 7, accuracy: 0.5 + (i % 100) / 1000 },
      acceptedAt: new Date(t0 + i),
    }));
    const chunks = participantChunks(participants);
    expect(chunks.length).toBeLessThanOrEqual(10);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(512 * 1024);
    const round = {
      taskId: id,
      round: 7,
      status: 'abandoned' as const,
      baseVersion: 0,
      resultVersion: null,
      assigned: 30_000,
      accepted: 30_000,
      rejected: 0,
      rejectedByCode: {},
      numExamples: 0,
      metrics: null,
      openedAt: new Date(t0),
      closedAt: new Date(t0 + 60_000),
      closeReason: 'below_minimum' as const,
    };
    const db = database(env.DB);
    await recordRound(db, round, participants, null);
    await recordRound(db, round, participants, null); // the close retried after a crash
    expect(await getRound(db, id, 7)).toMatchObject({ accepted: 30_000 });
    const stored = await listParticipants(db, id, 7);
    expect(stored).toHaveLength(30_000);
    const byId = new Map(stored.map((p) => [p.clientId, p]));
    for (const i of [0, 1, 2, 12_345, 29_999]) {
      const want = participants[i]!;
      expect(byId.get(want.clientId)).toEqual({ clientId: want.clientId, numExamples: want.numExamples, metrics: want.metrics, acceptedAt: want.acceptedAt });
    }
  });
});
