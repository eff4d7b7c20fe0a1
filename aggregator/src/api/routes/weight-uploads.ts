/**
 * @module Initial weights in chunks (operator routes; storage/weight-uploads.ts): for models whose
 * weights do not fit one request body, before `POST /tasks` with `initialWeightsUpload`.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { firstNonFinite } from '../../kernels/running-sum.ts';
import { accumulateWasm } from '../../kernels/wasm-worker.ts';
import { MAX_RANGED_PARAMS, rangeParams } from '../../master/ranges.ts';
import { readBody } from '../../master/read-body.ts';
import { uploadLimits } from '../../master/task-spec.ts';
import { getUpload, openUpload, uploadBounds, uploadChunkKey } from '../../storage/weight-uploads.ts';
import { sha256Hex } from '../../storage/weights.ts';
import { access } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { errors, timestamp } from '../schemas.ts';
import { octetStream } from './participation.ts';

export const weightUploadsApp = newRouter();

const WeightUploadSchema = z
  .object({
    uploadId: z.string(),
    numParams: z.number().int(),
    chunkParams: z.number().int().describe('Parameters per chunk (the last one holds the rest)'),
    chunks: z.number().int(),
    createdAt: timestamp,
  })
  .openapi('WeightUpload');

const UploadChunkParam = z.object({
  uploadId: z.string().openapi({ param: { name: 'uploadId', in: 'path', required: true } }),
  index: z.coerce
    .number()
    .int()
    .min(0)
    .openapi({ param: { name: 'index', in: 'path', required: true }, type: 'integer', example: 0 }),
});

weightUploadsApp.openapi(
  createRoute({
    method: 'post',
    path: '/weight-uploads',
    operationId: 'openWeightUpload',
    tags: ['tasks'],
    summary: "Open an upload of a model's initial weights in chunks (for models too large for one request)",
    ...access.operator,
    request: {
      body: {
        required: true,
        content: { 'application/json': { schema: z.strictObject({ numParams: z.number().int().min(1).max(MAX_RANGED_PARAMS) }) } },
      },
    },
    responses: { 201: { description: 'Opened', content: { 'application/json': { schema: WeightUploadSchema } } }, ...errors(400, 401, 403) },
  }),
  async (c) => {
    const { numParams } = c.req.valid('json');
    return c.json(await openUpload(c.env.MODELS, numParams, rangeParams(c.env.RANGE_PARAMS)), 201);
  },
);

weightUploadsApp.openapi(
  createRoute({
    method: 'put',
    path: '/weight-uploads/{uploadId}/chunks/{index}',
    operationId: 'putWeightChunk',
    tags: ['tasks'],
    summary: 'Send chunk k of the initial weights: the raw little-endian float32 bytes of parameters [k·chunkParams, …) (idempotent)',
    ...access.operator,
    request: {
      params: UploadChunkParam,
      body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } },
    },
    responses: {
      200: {
        description: 'Stored',
        content: { 'application/json': { schema: z.object({ index: z.number().int(), bodySha256: z.string() }) } },
      },
      ...errors(400, 401, 403, 404, 408, 413, 415, 422),
    },
  }),
  async (c) => {
    const { uploadId, index } = c.req.valid('param');
    const declared = octetStream(c, 'a weights chunk is sent as application/octet-stream (raw little-endian float32)');
    const upload = await getUpload(c.env.MODELS, uploadId);
    if (!upload) throw new ApiError('not_found', `no weight upload "${uploadId}"`);
    if (index >= upload.chunks) throw new ApiError('invalid_request', `no chunk ${index}: this upload has ${upload.chunks} chunks, 0 to ${upload.chunks - 1}`);
    const { start, end } = uploadBounds(upload, index);
    const bytes = (end - start) * 4;
    const read = await readBody(c.req.raw.body ?? new Blob([]).stream(), { cap: bytes, declared, ...uploadLimits(c.env) });
    if (!read.ok) {
      if (read.reason === 'too_large') throw new ApiError('payload_too_large', `chunk ${index} is ${bytes} bytes (parameters ${start} to ${end - 1})`);
      throw new ApiError(
        'upload_timeout',
        `chunk ${index} did not arrive whole (${read.received} bytes in ${(read.elapsedMs / 1000).toFixed(1)} s); send it again`,
      );
    }
    if (read.body.length !== bytes)
      throw new ApiError(
        'invalid_weights',
        `chunk ${index} is ${read.body.length} bytes; it holds parameters ${start} to ${end - 1}, ${bytes} bytes of float32`,
      );
    const body = read.body.byteOffset % 4 === 0 ? read.body : read.body.slice();
    const values = new Float32Array(body.buffer, body.byteOffset, end - start);
    const bad = firstNonFinite(values, accumulateWasm);
    if (bad >= 0) throw new ApiError('non_finite', `chunk ${index} has a non-finite value at flat index ${start + bad}`);
    const bodySha256 = await sha256Hex(body);
    await c.env.MODELS.put(uploadChunkKey(uploadId, index), body, { sha256: bodySha256 });
    return c.json({ index, bodySha256 }, 200);
  },
);
