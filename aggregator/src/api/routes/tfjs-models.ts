/**
 * @module Every model version as a TensorFlow.js Layers model: `model.json` (the task's topology,
 * its training config, the weights manifest) and its one weights file, so
 * `tf.loadLayersModel('<base>/v1/tasks/T/models/3/model.json', { requestInit: { headers } })` works
 * as is. The weights file is the float32 data section of the version's safetensors blob (the same
 * bytes, in the task's tensor order), streamed from R2 by range; both are immutable like the blob.
 */

import { createRoute, z } from '@hono/zod-openapi';
import type { TrainingPlan } from '#protocol/messages.ts';
import type { ModelVersionRow, TaskRow } from '../../db/schema.ts';
import { database, getVersion } from '../../db/store.ts';
import { blobHeaders, cachedBlob } from '../../storage/edge-cache.ts';
import { access } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { CACHE_IMMUTABLE, HEADERS, immutableDownload } from '../openapi.ts';
import { newRouter } from '../router.ts';
import { ConditionalHeaders, errors, TaskIdParam, VersionParam } from '../schemas.ts';
import { loadTask, planOf, tensorEntries } from '../tasks-view.ts';
import { etagMatches, versionOrThrow } from './models.ts';

export const tfjsModelsApp = newRouter();

/** The weights file's name in every manifest (tfjs resolves it against the model.json URL). */
const WEIGHTS_FILE = 'weights.bin';

/** The `model.json` of a tfjs Layers model (tf.io.ModelJSON), as `model.save` writes it. */
const ModelJsonSchema = z
  .object({
    format: z.literal('layers-model'),
    generatedBy: z.string(),
    convertedBy: z.null(),
    modelTopology: z.record(z.string(), z.unknown()),
    trainingConfig: z.object({
      loss: z.string(),
      metrics: z.array(z.string()),
      optimizer_config: z.object({ class_name: z.string(), config: z.record(z.string(), z.number()) }),
    }),
    weightsManifest: z.array(
      z.object({
        paths: z.array(z.string()),
        weights: z.array(z.object({ name: z.string(), shape: z.array(z.number().int()), dtype: z.literal('float32') })),
      }),
    ),
    userDefinedMetadata: z.object({ fedge: z.object({ taskId: z.string(), version: z.number().int(), contentHash: z.string() }) }),
  })
  .openapi('TfjsModelJson');

tfjsModelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models/current/model.json',
    operationId: 'getCurrentModelJson',
    tags: ['models'],
    summary: 'The current version as a TensorFlow.js model.json (revalidated: it moves with every version)',
    ...access.operatorOrClient,
    request: { params: TaskIdParam },
    responses: {
      200: { description: 'model.json', headers: HEADERS.revalidate, content: { 'application/json': { schema: ModelJsonSchema } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const task = await loadTask(c.env, taskId);
    const row = await getVersion(database(c.env.DB), taskId, task.currentVersion);
    if (!row) throw new ApiError('version_not_found', `version ${task.currentVersion} of task "${taskId}" is missing`);
    c.header('cache-control', 'no-cache');
    // Relative to .../models/current/: the weights of the version it names, cached forever.
    return c.json(modelJson(task, row, `../${row.version}/${WEIGHTS_FILE}`), 200);
  },
);

tfjsModelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models/{version}/model.json',
    operationId: 'getModelJson',
    tags: ['models'],
    summary: 'One version as a TensorFlow.js model.json (for tf.loadLayersModel): topology, training config, weights manifest; immutable',
    ...access.operatorOrClient,
    request: { params: VersionParam, headers: ConditionalHeaders },
    responses: { ...immutableDownload('model.json', 'application/json', ModelJsonSchema), ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { taskId, version } = c.req.valid('param');
    const row = await versionOrThrow(c.env, taskId, version);
    const etag = `"${row.contentHash}.json"`;
    if (etagMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304, { etag, 'cache-control': CACHE_IMMUTABLE });
    const task = await loadTask(c.env, taskId);
    c.header('etag', etag);
    c.header('cache-control', CACHE_IMMUTABLE);
    return c.json(modelJson(task, row, WEIGHTS_FILE), 200);
  },
);

tfjsModelsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/models/{version}/weights.bin',
    operationId: 'getWeightsBin',
    tags: ['models'],
    summary: "One version's weights as the tfjs weights file of its model.json: float32, little-endian, in the manifest's order; immutable",
    ...access.operatorOrClient,
    request: { params: VersionParam, headers: ConditionalHeaders },
    responses: {
      ...immutableDownload('float32 bytes', 'application/octet-stream', z.string().openapi({ format: 'binary' }), { cached: true }),
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId, version } = c.req.valid('param');
    const row = await versionOrThrow(c.env, taskId, version);
    const etag = `"${row.contentHash}.bin"`;
    const headers = { etag, 'cache-control': CACHE_IMMUTABLE };
    if (etagMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
    // The edge's cache first; on a miss, R2: the safetensors data section (after the 8-byte header length N and N bytes of header).
    const blob = await cachedBlob(
      `${row.r2Key}#weights.bin`,
      async () => {
        const head = await c.env.MODELS.get(row.r2Key, { range: { offset: 0, length: 8 } });
        if (!head) return null;
        const dataStart = 8 + new DataView(await head.arrayBuffer()).getUint32(0, true);
        const o = await c.env.MODELS.get(row.r2Key, { range: { offset: dataStart } });
        return o && { body: o.body, size: row.byteLength - dataStart };
      },
      (p) => c.executionCtx.waitUntil(p),
    );
    if (!blob) throw new Error(`R2 object ${row.r2Key} of version ${taskId}/${version} is missing`);
    return c.body(blob.body, 200, { ...headers, ...blobHeaders(blob) });
  },
);

/** The tfjs `model.json` of a version: what `model.save` would write for the task's model with these weights. */
function modelJson(task: TaskRow, row: ModelVersionRow, weightsPath: string): z.output<typeof ModelJsonSchema> {
  return {
    format: 'layers-model',
    generatedBy: 'fedge',
    convertedBy: null,
    modelTopology: task.modelTopology,
    trainingConfig: trainingConfig(planOf(task)),
    weightsManifest: [{ paths: [weightsPath], weights: tensorEntries(task.weightSpecs) }],
    userDefinedMetadata: { fedge: { taskId: task.id, version: row.version, contentHash: row.contentHash } },
  };
}

/**
 * The task's local training as tfjs records a compiled model's (`loadLayersModel` compiles the
 * model with it): its loss, accuracy for the classification losses (what the SDK reports), and
 * its optimizer with the plan's learning rate.
 */
export function trainingConfig(plan: TrainingPlan): z.output<typeof ModelJsonSchema>['trainingConfig'] {
  return {
    loss: plan.loss,
    metrics: plan.loss === 'meanSquaredError' ? [] : ['accuracy'],
    // Adam with tfjs's defaults, as the SDK trains (tf.train.adam(learningRate)); Keras key names.
    optimizer_config:
      plan.optimizer === 'adam'
        ? { class_name: 'Adam', config: { learning_rate: plan.learningRate, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 } }
        : { class_name: 'SGD', config: { learning_rate: plan.learningRate } },
  };
}
