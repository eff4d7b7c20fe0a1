/**
 * @module Client participation: check in (pace steering) and submit an update.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { access, clientOf } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { CheckInSchema, errors, RoundParam, TaskIdParam, UpdateAckSchema } from '../schemas.ts';
import { aggregatorOf } from '../tasks-view.ts';

export const participationApp = newRouter();

participationApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/checkin',
    tags: ['participation'],
    summary: 'Ask to join the open round: an assignment, or when to come back (Retry-After)',
    ...access.client,
    request: { params: TaskIdParam },
    responses: { 200: { description: 'Assignment or retry-later', content: { 'application/json': { schema: CheckInSchema } } }, ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const result = await aggregatorOf(c.env, taskId).checkIn(clientOf(c).clientId);
    if ('error' in result) throw new ApiError(result.error, `no task "${taskId}"`);
    if (result.status === 'retry_later') c.header('retry-after', String(result.retryAfterSeconds));
    return c.json(result, 200);
  },
);

participationApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/rounds/{round}/update',
    tags: ['participation'],
    summary: "Submit this client's update for its assigned round (idempotent: a retry with the same bytes returns the same ack)",
    description:
      'Body: a safetensors message (application/octet-stream) with Δ = trained − base for every tensor of the model, float32, and `__metadata__` ' +
      '`fedge.base_version`, `fedge.num_examples` and optionally `fedge.metrics` (a JSON object of numbers).',
    ...access.client,
    request: { params: RoundParam, body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: {
      200: { description: 'Accepted (durably); `fedge-replayed: true` when this is a retry of an accepted update', content: { 'application/json': { schema: UpdateAckSchema } } },
      ...errors(400, 401, 403, 404, 408, 409, 413, 415, 422, 429),
    },
  }),
  async (c) => {
    const { taskId, round } = c.req.valid('param');
    const client = clientOf(c);
    const mediaType = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'application/octet-stream') {
      throw new ApiError('unsupported_media_type', `an update is sent as application/octet-stream (a safetensors message), not ${mediaType ? JSON.stringify(mediaType) : 'without a content-type'}`);
    }
    const declared = Number(c.req.header('content-length') ?? NaN);
    // The body streams straight into the task's aggregator (no copy at the edge, none for the RPC),
    // which checks the client's assignment before it reads a byte and admits bodies under a budget of its own.
    const body = c.req.raw.body ?? new Blob([]).stream();
    const result = await aggregatorOf(c.env, taskId).submit(client.clientId, round, body, Number.isFinite(declared) ? declared : null);
    if (!result.ok) throw new ApiError(result.code, result.message, result.retryAfterSeconds === undefined ? {} : { 'retry-after': String(result.retryAfterSeconds) });
    if (result.replay) c.header('fedge-replayed', 'true');
    return c.json(result.ack, 200);
  },
);
