/**
 * @module Model versions: manifests and immutable, content-addressed weight blobs.
 */

import { createRoute, z } from '@hono/zod-openapi';
import type { ModelVersionRow, TaskRow } from '../../db/schema.ts';
import {
  database,
  type FederatedEvaluation,
  federatedEvaluations,
  getVersion,
  hasParticipated,
  listVersions,
  putEvaluation,
  setServerMetrics,
} from '../../db/store.ts';
import { blobHeaders, cachedBlob } from '../../storage/edge-cache.ts';
import { access, clientOf } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { CACHE_IMMUTABLE, HEADERS, immutableDownload } from '../openapi.ts';
import { byteRange } from '../ranges.ts';
import { newRouter } from '../router.ts';
import { EvaluationReportSchema, errors, ModelManifestSchema, PageQuery, RangeHeaders, ServerMetricsSchema, TaskIdParam, VersionParam } from '../schemas.ts';
import { loadTask, rulesOf, serverOf, tensorEntries } from '../tasks-view.ts';

export const modelsApp = newRouter();

modelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models',
    operationId: 'listVersions',
    tags: ['models'],
    summary: "A task's model versions, newest first",
    ...access.operatorOrClient,
    request: { params: TaskIdParam, query: PageQuery },
    responses: {
      200: { description: 'Versions', content: { 'application/json': { schema: z.object({ versions: z.array(ModelManifestSchema) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const { limit, before } = c.req.valid('query');
    const task = await loadTask(c.env, taskId);
    const db = database(c.env.DB);
    const rows = await listVersions(db, taskId, limit, before);
    const evals = await federatedEvaluations(
      db,
      taskId,
      rows.map((r) => r.version),
    );
    return c.json({ versions: rows.map((r) => manifest(task, r, evals.get(r.version))) }, 200);
  },
);

modelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models/current',
    operationId: 'getCurrentVersion',
    tags: ['models'],
    summary: 'The manifest of the current (latest) version',
    ...access.operatorOrClient,
    request: { params: TaskIdParam },
    responses: {
      200: { description: 'Manifest', headers: HEADERS.revalidate, content: { 'application/json': { schema: ModelManifestSchema } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const task = await loadTask(c.env, taskId);
    const db = database(c.env.DB);
    const row = await getVersion(db, taskId, task.currentVersion);
    if (!row) throw new ApiError('version_not_found', `version ${task.currentVersion} of task "${taskId}" is missing`);
    c.header('cache-control', 'no-cache');
    return c.json(manifest(task, row, (await federatedEvaluations(db, taskId, [row.version])).get(row.version)), 200);
  },
);

modelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models/{version}',
    operationId: 'getVersion',
    tags: ['models'],
    summary: "One version's manifest (immutable)",
    ...access.operatorOrClient,
    request: { params: VersionParam },
    responses: {
      200: { description: 'Manifest', headers: HEADERS.revalidate, content: { 'application/json': { schema: ModelManifestSchema } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId, version } = c.req.valid('param');
    const task = await loadTask(c.env, taskId);
    const row = await versionOrThrow(c.env, taskId, version);
    // The weights never change; evaluations of them keep arriving, so the manifest is revalidated.
    c.header('cache-control', 'no-cache');
    return c.json(manifest(task, row, (await federatedEvaluations(database(c.env.DB), taskId, [version])).get(version)), 200);
  },
);

modelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models/{version}/weights',
    operationId: 'getWeights',
    tags: ['models'],
    summary: "One version's weights: a safetensors blob, cacheable forever (ETag = content hash)",
    ...access.operatorOrClient,
    request: { params: VersionParam, headers: RangeHeaders },
    responses: {
      ...immutableDownload(
        'safetensors bytes (ETag: the quoted SHA-256 of the bytes, the manifest’s contentHash)',
        'application/octet-stream',
        z.string().openapi({ format: 'binary' }),
        { cached: true },
      ),
      206: {
        description: 'The byte range `Range` asked for (one `bytes=` range; read from R2, not the edge cache)',
        headers: { ...HEADERS.etag, ...HEADERS.immutable, ...HEADERS.contentRange },
        content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
      },
      ...errors(401, 403, 404, 416),
    },
  }),
  async (c) => {
    const { taskId, version } = c.req.valid('param');
    const row = await versionOrThrow(c.env, taskId, version);
    const etag = `"${row.contentHash}"`;
    const headers = { etag, 'cache-control': CACHE_IMMUTABLE };
    if (etagMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
    // A byte range (a resumed or piecewise download) straight from R2.
    const range = byteRange(c.req.header('range'), row.byteLength);
    if (range === 'unsatisfiable')
      throw new ApiError('range_not_satisfiable', `the weights of version ${version} are ${row.byteLength} bytes; the range starts past them`, {
        'content-range': `bytes */${row.byteLength}`,
      });
    if (range) {
      const part = await c.env.MODELS.get(row.r2Key, { range: { offset: range.start, length: range.end - range.start + 1 } });
      if (!part) throw new Error(`R2 object ${row.r2Key} of version ${taskId}/${version} is missing`);
      return c.body(part.body, 206, {
        ...headers,
        'content-type': 'application/octet-stream',
        'content-length': String(range.end - range.start + 1),
        'content-range': `bytes ${range.start}-${range.end}/${row.byteLength}`,
        'accept-ranges': 'bytes',
      });
    }
    // Immutable bytes: the edge's cache serves a hot version without reading R2 (storage/edge-cache.ts).
    const blob = await cachedBlob(
      row.r2Key,
      async () => {
        const o = await c.env.MODELS.get(row.r2Key);
        return o && { body: o.body, size: o.size };
      },
      (p) => c.executionCtx.waitUntil(p),
    );
    if (!blob) throw new Error(`R2 object ${row.r2Key} of version ${taskId}/${version} is missing`);
    return c.body(blob.body, 200, { ...headers, ...blobHeaders(blob), 'accept-ranges': 'bytes' });
  },
);

/** Whether an `If-None-Match` header names `etag` (the response can be a 304). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  return ifNoneMatch?.split(',').some((t) => t.trim() === etag) ?? false;
}

export async function versionOrThrow(env: Env, taskId: string, version: number): Promise<ModelVersionRow> {
  const row = await getVersion(database(env.DB), taskId, version);
  if (row) return row;
  await loadTask(env, taskId); // task_not_found takes precedence
  throw new ApiError('version_not_found', `task "${taskId}" has no version ${version}`);
}

modelsApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/models/{version}/evaluation',
    operationId: 'reportEvaluation',
    tags: ['models'],
    summary: "Report this client's evaluation of a version on its local held-out data (replaces its earlier report)",
    ...access.client,
    request: { params: VersionParam, body: { required: true, content: { 'application/json': { schema: EvaluationReportSchema } } } },
    responses: { 200: { description: 'Recorded', content: { 'application/json': { schema: EvaluationReportSchema } } }, ...errors(400, 401, 403, 404, 422) },
  }),
  async (c) => {
    const { taskId, version } = c.req.valid('param');
    const body = c.req.valid('json');
    const caller = clientOf(c);
    const task = await loadTask(c.env, taskId);
    await versionOrThrow(c.env, taskId, version);
    const cap = rulesOf(task).maxExamplesPerClient;
    if (body.numExamples > cap) throw new ApiError('invalid_example_count', `example count ${body.numExamples} exceeds the task's cap of ${cap}`);
    // Example counts are self-reported: only clients that took part may weigh in (README: trust model).
    const db = database(c.env.DB);
    if (!(await hasParticipated(db, taskId, caller.clientId)) && !(await (await serverOf(c.env, taskId, caller.clientId)).isAssignedNow(caller.clientId))) {
      throw new ApiError(
        'not_participant',
        'only clients that took part in this task (an accepted update, or an assignment in the live round) may report evaluations',
      );
    }
    await putEvaluation(db, taskId, version, caller.clientId, body.numExamples, body.metrics);
    return c.json(body, 200);
  },
);

modelsApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/models/{version}/server-metrics',
    operationId: 'setServerMetrics',
    tags: ['models'],
    summary: "Record the operator's own evaluation of a version (e.g. on a held-out test set), shown beside the federated one",
    ...access.operator,
    request: { params: VersionParam, body: { required: true, content: { 'application/json': { schema: ServerMetricsSchema } } } },
    responses: { 200: { description: 'The manifest', content: { 'application/json': { schema: ModelManifestSchema } } }, ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { taskId, version } = c.req.valid('param');
    const { metrics } = c.req.valid('json');
    const task = await loadTask(c.env, taskId);
    await versionOrThrow(c.env, taskId, version);
    const db = database(c.env.DB);
    await setServerMetrics(db, taskId, version, metrics);
    const row = await versionOrThrow(c.env, taskId, version);
    return c.json(manifest(task, row, (await federatedEvaluations(db, taskId, [version])).get(version)), 200);
  },
);

export function manifest(task: TaskRow, r: ModelVersionRow, federated?: FederatedEvaluation) {
  return {
    taskId: r.taskId,
    version: r.version,
    parentVersion: r.parentVersion,
    round: r.round,
    contentHash: r.contentHash,
    byteLength: r.byteLength,
    tensors: tensorEntries(task.weightSpecs),
    participants: r.participants,
    numExamples: r.numExamples,
    metrics: r.metrics,
    strategy: r.strategy,
    privacy: r.privacy ?? null,
    serverMetrics: r.serverMetrics,
    federatedEvaluation: federated ?? null,
    createdAt: r.createdAt.toISOString(),
    weightsUrl: `/v1/tasks/${r.taskId}/models/${r.version}/weights`,
  };
}
