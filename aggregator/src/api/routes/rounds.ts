/**
 * @module Round history: participants, accepted/rejected counts, metrics, the version each produced.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { RoundRow } from '../../db/schema.ts';
import { database, getRound, listParticipants, listRounds } from '../../db/store.ts';
import type { LiveRound } from '../../master/task-aggregator.ts';
import { access } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { errors, PageQuery, ParticipantSchema, RoundParam, RoundSchema, TaskIdParam } from '../schemas.ts';
import { aggregatorOf, loadTask } from '../tasks-view.ts';

export const roundsApp = newRouter();

roundsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/rounds',
    operationId: 'listRounds',
    tags: ['rounds'],
    summary: 'Rounds, newest first; the first page starts with the live round',
    ...access.operator,
    request: { params: TaskIdParam, query: PageQuery },
    responses: {
      200: { description: 'Rounds', content: { 'application/json': { schema: z.object({ rounds: z.array(RoundSchema) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const { limit, before } = c.req.valid('query');
    await loadTask(c.env, taskId);
    const live = await aggregatorOf(c.env, taskId).status();
    const rows = await listRounds(database(c.env.DB), taskId, limit, before);
    const out = rows.map(finished);
    if (live && (before === undefined || live.round < before) && !rows.some((r) => r.round === live.round)) out.unshift(current(live));
    return c.json({ rounds: out.slice(0, limit) }, 200);
  },
);

roundsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/rounds/{round}',
    operationId: 'getRound',
    tags: ['rounds'],
    summary: 'One round with its participants',
    ...access.operator,
    request: { params: RoundParam },
    responses: {
      200: { description: 'Round', content: { 'application/json': { schema: RoundSchema.extend({ participants: z.array(ParticipantSchema) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId, round } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const db = database(c.env.DB);
    const row = await getRound(db, taskId, round);
    if (row) {
      const participants = await listParticipants(db, taskId, round);
      return c.json(
        {
          ...finished(row),
          participants: participants.map((p) => ({
            ...p,
            metrics: p.metrics,
            acceptedAt: p.acceptedAt.toISOString(),
          })),
        },
        200,
      );
    }
    const live = await aggregatorOf(c.env, taskId).status();
    if (live && live.round === round) return c.json({ ...current(live), participants: [] }, 200);
    throw new ApiError('round_not_found', `task "${taskId}" has no round ${round}`);
  },
);

type RoundView = z.infer<typeof RoundSchema>;

function finished(r: RoundRow): RoundView {
  return {
    round: r.round,
    status: r.status,
    baseVersion: r.baseVersion,
    resultVersion: r.resultVersion,
    assigned: r.assigned,
    accepted: r.accepted,
    rejected: r.rejected,
    rejectedByCode: r.rejectedByCode,
    numExamples: r.numExamples,
    metrics: r.metrics,
    openedAt: r.openedAt.toISOString(),
    closedAt: r.closedAt.toISOString(),
    closeReason: r.closeReason,
    deadlineAt: null,
  };
}

function current(l: LiveRound): RoundView {
  return {
    round: l.round,
    status: l.status,
    baseVersion: l.baseVersion,
    resultVersion: null,
    assigned: l.assigned,
    accepted: l.accepted,
    rejected: l.rejected,
    rejectedByCode: l.rejectedByCode,
    numExamples: null,
    metrics: null,
    openedAt: l.openedAt,
    closedAt: null,
    closeReason: null,
    deadlineAt: l.deadlineAt,
  };
}
