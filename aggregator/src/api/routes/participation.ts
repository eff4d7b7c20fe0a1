/**
 * @module Client participation: check in (pace steering) and submit an update.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { ErrorCode } from '#protocol/codes.ts';
import { rangeName } from '../../master/ranges.ts';
import { access, clientOf } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { HEADERS } from '../openapi.ts';
import { newRouter } from '../router.ts';
import { CheckInSchema, ChunkAckSchema, ChunkCommitSchema, ChunkParam, errors, RoundParam, TaskIdParam, UpdateAckSchema } from '../schemas.ts';
import { aggregatorOf, serverOf } from '../tasks-view.ts';

export const participationApp = newRouter();

participationApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/checkin',
    operationId: 'checkIn',
    tags: ['participation'],
    summary: 'Ask to join the open round: an assignment, or when to come back (Retry-After)',
    ...access.client,
    request: { params: TaskIdParam },
    responses: {
      200: {
        description: 'An assignment, or when to come back (`retry_later`, with `Retry-After` = `retryAfterSeconds`)',
        headers: HEADERS.retryAfter,
        content: { 'application/json': { schema: CheckInSchema } },
      },
      ...errors(401, 403, 404, 409),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const { clientId } = clientOf(c);
    const result = await (await serverOf(c.env, taskId, clientId)).checkIn(clientId);
    if ('code' in result) throw refusal(result);
    if (result.status === 'retry_later') c.header('retry-after', String(result.retryAfterSeconds));
    return c.json(result, 200);
  },
);

participationApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/rounds/{round}/update',
    operationId: 'submitUpdate',
    tags: ['participation'],
    summary: "Submit this client's update for its assigned round (idempotent: a retry with the same bytes returns the same ack)",
    description: [
      'The body is one safetensors message (`application/octet-stream`, at most the task’s `maxUpdateBytes`): an 8-byte little-endian header length N, N bytes of JSON header, then the data.',
      '',
      '- **Tensors**: exactly the task’s tensor set, by name (`<layer>/<weight>`, as in the task’s `tensors`), each with the task’s shape, holding Δ = trained − base. No tensor missing, none extra (`tensor_mismatch`).',
      '- **dtype**: the task’s `updateEncoding` (the assignment names it): `F32` (float32, the default), `F16` (float16), or `I8` plus one `F32` tensor `#scales` with a scale per 256 parameters of the flat update (int8); little-endian; another dtype is `tensor_mismatch`; every value and scale finite (`non_finite`).',
      '- **`__metadata__`** (safetensors allows string values only, so numbers are decimal strings and metrics a JSON string):',
      '  - `fedge.base_version`: the version the client trained from, e.g. `"3"` (the assignment’s `baseVersion`, else `base_version_mismatch`);',
      '  - `fedge.num_examples`: the local example count, a positive integer, e.g. `"128"`, at most the round rules’ `maxExamplesPerClient` (`invalid_example_count`);',
      '  - `fedge.metrics` (optional): a JSON object of 1 to 32 finite numbers, e.g. `"{\\"loss\\":0.31,\\"accuracy\\":0.9}"` (`invalid_metadata`).',
      '- A body that is not a safetensors message is `malformed_update`; a retry of the same bytes returns the same ack with `fedge-replayed: true`.',
    ].join('\n'),
    ...access.client,
    request: { params: RoundParam, body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: {
      200: {
        description: 'Accepted (durably); `fedge-replayed: true` when this is a retry of an accepted update',
        headers: HEADERS.replayed,
        content: { 'application/json': { schema: UpdateAckSchema } },
      },
      ...errors(400, 401, 403, 404, 408, 409, 413, 415, 422, 429),
    },
  }),
  async (c) => {
    const { taskId, round } = c.req.valid('param');
    const client = clientOf(c);
    const declared = octetStream(c, 'an update is sent as application/octet-stream (a safetensors message)');
    const stub = await serverOf(c.env, taskId, client.clientId);
    // Admitted first, body unread: the task's aggregator checks the assignment and waits for room
    // in its upload budget while TCP holds the client back. Then the body streams straight into
    // it (no copy at the edge, none for the RPC).
    const admitted = await stub.admitUpload(client.clientId, round, declared);
    if (!admitted.ok) {
      // Say we will not read it: the answer goes out now rather than after the client's whole upload.
      await c.req.raw.body?.cancel().catch(() => {});
      throw refusal(admitted);
    }
    const result = await stub.submit(admitted.ticket, client.clientId, round, c.req.raw.body ?? new Blob([]).stream(), declared);
    if (!result.ok) throw refusal(result);
    if (result.replay) c.header('fedge-replayed', 'true');
    return c.json(result.ack, 200);
  },
);

participationApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/rounds/{round}/update/chunks/{index}',
    operationId: 'submitChunk',
    tags: ['participation'],
    summary: 'Send one chunk of a chunked update (models split into parameter ranges; idempotent: a retry with the same bytes answers the same)',
    description: [
      'For tasks whose assignment has `chunked` = {chunkParams, chunks}: chunk k is parameters [k·chunkParams, min((k+1)·chunkParams, numParams)) of the flat update Δ (the model’s tensors end to end, in the task’s order).',
      '',
      '- **Body**: one safetensors message (`application/octet-stream`) holding one tensor `delta` of the chunk’s length in the task’s `updateEncoding` (`F32`, `F16`, or `I8` plus the `F32` tensor `#scales`, one scale per 256 parameters of the chunk).',
      '- **`__metadata__`**: `fedge.base_version` (the assignment’s `baseVersion`) and `fedge.chunk` (k).',
      '- Chunks may be sent in any order and in parallel; a chunk already stored with the same bytes answers `replayed: true`, with other bytes `duplicate_conflict`. Then commit the update (`POST …/update/commit`).',
    ].join('\n'),
    ...access.client,
    request: { params: ChunkParam, body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: {
      200: { description: 'Stored (durably)', content: { 'application/json': { schema: ChunkAckSchema } } },
      ...errors(400, 401, 403, 404, 408, 409, 413, 415, 422, 429),
    },
  }),
  async (c) => {
    const { taskId, round, index } = c.req.valid('param');
    const { clientId } = clientOf(c);
    const declared = octetStream(c, 'a chunk is sent as application/octet-stream (a safetensors message)');
    const admitted = await aggregatorOf(c.env, taskId).admitChunk(clientId, round, index);
    if (!admitted.ok) {
      await c.req.raw.body?.cancel().catch(() => {});
      throw refusal(admitted);
    }
    const range = c.env.RANGES.get(c.env.RANGES.idFromName(rangeName(taskId, index)));
    const result = await range.putChunk(admitted.place, c.req.raw.body ?? new Blob([]).stream(), declared);
    if ('code' in result) throw refusal(result);
    return c.json(result, 200);
  },
);

participationApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/rounds/{round}/update/commit',
    operationId: 'commitChunkedUpdate',
    tags: ['participation'],
    summary: 'Commit a chunked update once every chunk is stored: its acceptance (idempotent: a retry returns the same ack)',
    ...access.client,
    request: { params: RoundParam, body: { required: true, content: { 'application/json': { schema: ChunkCommitSchema } } } },
    responses: {
      200: {
        description: 'Accepted (durably); `fedge-replayed: true` when this is a retry of an accepted update',
        headers: HEADERS.replayed,
        content: { 'application/json': { schema: UpdateAckSchema } },
      },
      ...errors(400, 401, 403, 404, 409, 422, 429),
    },
  }),
  async (c) => {
    const { taskId, round } = c.req.valid('param');
    const { clientId } = clientOf(c);
    const result = await aggregatorOf(c.env, taskId).commitChunked(clientId, round, c.req.valid('json'));
    if (!result.ok) throw refusal(result);
    if (result.replay) c.header('fedge-replayed', 'true');
    return c.json(result.ack, 200);
  },
);

/**
 * The declared length (null when absent) of a request whose body must be application/octet-stream;
 * `unsupported_media_type` otherwise, its message starting with `rule`.
 */
export function octetStream(c: { req: { header(name: string): string | undefined } }, rule: string): number | null {
  const mediaType = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/octet-stream')
    throw new ApiError('unsupported_media_type', `${rule}, not ${mediaType ? JSON.stringify(mediaType) : 'without a content-type'}`);
  const raw = Number(c.req.header('content-length') ?? NaN);
  return Number.isFinite(raw) ? raw : null;
}

export function refusal(r: { code: ErrorCode; message: string; retryAfterSeconds?: number }): ApiError {
  return new ApiError(r.code, r.message, r.retryAfterSeconds === undefined ? {} : { 'retry-after': String(r.retryAfterSeconds) });
}
