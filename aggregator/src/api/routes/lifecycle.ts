/**
 * @module A task's lifecycle: pause, resume, stop. While paused, check-ins are told to come back
 * later (`retry_later`, reason `task_paused`) and the open round's deadline clock stops, so
 * nothing accepted is lost; resuming restarts the clock with the time that was left. Stopping is
 * for good: no new assignments (`409 task_stopped`), the open round ends by its rules with the
 * clients already assigned, no round after it is assigned; a stopped task cannot be paused or
 * resumed. The rules are master/lifecycle.ts; the task's Durable Object decides, and D1's
 * `status` mirrors it for listings.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { eq } from 'drizzle-orm';
import { deleteTaskBlobs, deleteTaskRows } from '../../db/delete-task.ts';
import { tasks } from '../../db/schema.ts';
import { database } from '../../db/store.ts';
import { access } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { errors, LiveRoundSchema, TaskIdParam } from '../schemas.ts';
import { aggregatorOf, loadTask } from '../tasks-view.ts';

export const lifecycleApp = newRouter();

const LifecycleSchema = z
  .object({ id: z.string(), status: z.enum(['active', 'paused', 'stopped']), currentRound: LiveRoundSchema.nullable() })
  .openapi('TaskLifecycle');

const SUMMARIES = {
  pause: "Pause a task: check-ins are told to come back later, the open round's deadline clock stops, nothing accepted is lost (idempotent)",
  resume: 'Resume a paused task: check-ins are assigned again, the deadline clock restarts with the time that was left (idempotent)',
  stop: 'Stop a task for good: no new assignments; the open round ends by its rules with the clients already assigned; no new rounds (idempotent)',
} as const;
const STATUS = { pause: 'paused', resume: 'active', stop: 'stopped' } as const;

for (const action of ['pause', 'resume', 'stop'] as const) {
  lifecycleApp.openapi(
    createRoute({
      method: 'post',
      path: `/tasks/{taskId}/${action}`,
      operationId: `${action}Task`,
      tags: ['tasks'],
      summary: SUMMARIES[action],
      ...access.operator,
      request: { params: TaskIdParam },
      responses: { 200: { description: 'The task', content: { 'application/json': { schema: LifecycleSchema } } }, ...errors(401, 403, 404, 409) },
    }),
    async (c) => {
      const { taskId } = c.req.valid('param');
      await loadTask(c.env, taskId);
      const currentRound = await aggregatorOf(c.env, taskId).setLifecycle(action);
      if (currentRound && 'code' in currentRound) throw new ApiError(currentRound.code, currentRound.message);
      const status = STATUS[action];
      await database(c.env.DB).update(tasks).set({ status }).where(eq(tasks.id, taskId));
      return c.json({ id: taskId, status, currentRound }, 200);
    },
  );
}

const DeletedSchema = z
  .object({
    id: z.string(),
    deleted: z.object({ versions: z.number().int(), rounds: z.number().int(), clients: z.number().int(), blobs: z.number().int() }),
  })
  .openapi('DeletedTask');

lifecycleApp.openapi(
  createRoute({
    method: 'delete',
    path: '/tasks/{taskId}',
    operationId: 'deleteTask',
    tags: ['tasks'],
    summary: 'Delete a stopped task and everything it holds',
    description:
      "Only a stopped task whose last round has ended (else `409 task_not_stopped`). Removed: the task, its clients and their tokens, enrollment keys, identity providers, rounds and participants, federated evaluations, every version (metadata in D1 and weights in R2), and the Durable Object's ledger and stored updates. Nothing is kept on the server: download the versions you want first. Safe to retry.",
    ...access.operator,
    request: { params: TaskIdParam },
    responses: { 200: { description: 'What was removed', content: { 'application/json': { schema: DeletedSchema } } }, ...errors(401, 403, 404, 409) },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const destroyed = await aggregatorOf(c.env, taskId).destroy();
    if ('code' in destroyed) throw new ApiError(destroyed.code, destroyed.message);
    // The task row goes last (in the D1 batch): a delete cut off halfway is still found, and redone.
    const blobs = await deleteTaskBlobs(c.env.MODELS, taskId);
    const rows = await deleteTaskRows(database(c.env.DB), taskId);
    return c.json({ id: taskId, deleted: { ...rows, blobs } }, 200);
  },
);
