/**
 * @module A task's lifecycle: pause and resume. While paused, check-ins are told to come back
 * later (`retry_later`, reason `task_paused`) and the open round's deadline clock stops, so
 * nothing accepted is lost; resuming restarts the clock with the time that was left (see
 * master/lifecycle.ts). The task's Durable Object decides; D1's `status` mirrors it for listings.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { eq } from 'drizzle-orm';
import { tasks } from '../../db/schema.ts';
import { database } from '../../db/store.ts';
import { access } from '../auth.ts';
import { newRouter } from '../router.ts';
import { errors, LiveRoundSchema, TaskIdParam } from '../schemas.ts';
import { aggregatorOf, loadTask } from '../tasks-view.ts';

export const lifecycleApp = newRouter();

const LifecycleSchema = z.object({ id: z.string(), status: z.enum(['active', 'paused']), currentRound: LiveRoundSchema.nullable() }).openapi('TaskLifecycle');

for (const action of ['pause', 'resume'] as const) {
  lifecycleApp.openapi(
    createRoute({
      method: 'post',
      path: `/tasks/{taskId}/${action}`,
      tags: ['tasks'],
      summary:
        action === 'pause'
          ? "Pause a task: check-ins are told to come back later, the open round's deadline clock stops, nothing accepted is lost (idempotent)"
          : 'Resume a paused task: check-ins are assigned again, the deadline clock restarts with the time that was left (idempotent)',
      ...access.operator,
      request: { params: TaskIdParam },
      responses: { 200: { description: 'The task', content: { 'application/json': { schema: LifecycleSchema } } }, ...errors(401, 403, 404) },
    }),
    async (c) => {
      const { taskId } = c.req.valid('param');
      await loadTask(c.env, taskId);
      const currentRound = await aggregatorOf(c.env, taskId).setPaused(action === 'pause');
      const status: 'active' | 'paused' = action === 'pause' ? 'paused' : 'active';
      await database(c.env.DB).update(tasks).set({ status }).where(eq(tasks.id, taskId));
      return c.json({ id: taskId, status, currentRound }, 200);
    },
  );
}
