/**
 * @module Client participation: check in (pace steering) and submit an update.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { requireClient, type AppEnv, type Caller } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { CheckInSchema, errors, RoundParam, TaskIdParam, UpdateAckSchema } from '../schemas.ts';
import { aggregatorOf, taskLayout } from '../tasks-view.ts';

export const participationApp = newRouter();

participationApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/checkin',
    tags: ['participation'],
    summary: 'Ask to join the open round: an assignment, or when to come back (Retry-After)',
    middleware: [requireClient] as const,
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

/**
 * Admission control: update bodies being read or handed to an aggregator in this isolate, in
 * bytes. Past the budget a client is told to retry (429 + Retry-After) before its body is read,
 * instead of the runtime running out of memory or dropping connections under a long queue.
 */
let inflightBytes = 0;
export const INFLIGHT_BUDGET_BYTES = 64 * 1024 * 1024;

participationApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/rounds/{round}/update',
    tags: ['participation'],
    summary: "Submit this client's update for its assigned round (idempotent: a retry with the same bytes returns the same ack)",
    description:
      'Body: a safetensors message (application/octet-stream) with Δ = trained − base for every tensor of the model, float32, and `__metadata__` ' +
      '`fedge.base_version`, `fedge.num_examples` and optionally `fedge.metrics` (a JSON object of numbers).',
    middleware: [requireClient] as const,
    request: { params: RoundParam, body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: {
      200: { description: 'Accepted (durably); `fedge-replayed: true` when this is a retry of an accepted update', content: { 'application/json': { schema: UpdateAckSchema } } },
      ...errors(400, 401, 403, 404, 409, 413, 422, 429),
    },
  }),
  async (c) => {
    const { taskId, round } = c.req.valid('param');
    const client = clientOf(c);
    const layout = await taskLayout(c.env, taskId);
    const stub = aggregatorOf(c.env, taskId);
    const declared = Number(c.req.header('content-length') ?? NaN);
    if (declared > layout.maxUpdateBytes) {
      c.executionCtx.waitUntil(stub.recordRejection(round, 'payload_too_large'));
      throw new ApiError('payload_too_large', `update is ${declared} bytes; the cap for this task is ${layout.maxUpdateBytes}`);
    }
    const reserve = Number.isFinite(declared) && declared > 0 ? declared : layout.maxUpdateBytes;
    if (inflightBytes > 0 && inflightBytes + reserve > INFLIGHT_BUDGET_BYTES) {
      throw new ApiError('overloaded', 'too many updates in flight; retry shortly', { 'retry-after': '1' });
    }
    inflightBytes += reserve;
    try {
      const body = await readCapped(c.req.raw, layout.maxUpdateBytes, Number.isFinite(declared) ? declared : undefined);
      if (!body) {
        c.executionCtx.waitUntil(stub.recordRejection(round, 'payload_too_large'));
        throw new ApiError('payload_too_large', `update exceeds the cap for this task (${layout.maxUpdateBytes} bytes)`);
      }
      const result = await stub.submit(client.clientId, round, body);
      if (!result.ok) throw new ApiError(result.code, result.message);
      if (result.replay) c.header('fedge-replayed', 'true');
      return c.json(result.ack, 200);
    } finally {
      inflightBytes -= reserve;
    }
  },
);

function clientOf(c: Context<AppEnv>): Extract<Caller, { kind: 'client' }> {
  const caller = c.get('caller');
  if (caller.kind !== 'client') throw new ApiError('forbidden', 'this operation needs a client token');
  return caller;
}

/** Reads a body into one buffer, or returns null as soon as it passes `cap` bytes. */
async function readCapped(req: Request, cap: number, declared: number | undefined): Promise<ArrayBuffer | null> {
  if (!req.body) return new ArrayBuffer(0);
  const reader = req.body.getReader();
  let buf = new Uint8Array(declared ?? 64 * 1024);
  let len = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (len + value.byteLength > cap) {
      await reader.cancel();
      return null;
    }
    if (len + value.byteLength > buf.byteLength) {
      const grown = new Uint8Array(Math.min(cap, Math.max(buf.byteLength * 2, len + value.byteLength)));
      grown.set(buf.subarray(0, len));
      buf = grown;
    }
    buf.set(value, len);
    len += value.byteLength;
  }
  return len === buf.byteLength ? buf.buffer : buf.slice(0, len).buffer;
}
