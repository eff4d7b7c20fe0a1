/**
 * @module Tasks and their clients (operator routes, plus task status for the task's clients).
 */
import { createRoute, z } from '@hono/zod-openapi';
import { TENSOR_NAME_PATTERN, type TrainingPlan } from '#protocol/messages.ts';
import { concatTensors, type DecodedMessage, decodeTensors, elementCount, WireFormatError } from '#protocol/safetensors.ts';
import { modelVersions, tasks } from '../../db/schema.ts';
import { database, listTasks } from '../../db/store.ts';
import { firstNonFinite } from '../../kernels/running-sum.ts';
import { accumulateWasm } from '../../kernels/wasm-worker.ts';
import { chunkedUpload, MAX_RANGED_PARAMS, maxChunkBytes, RANGED_ABOVE_PARAMS, rangedMisfit, rangeLayout, rangeParams } from '../../master/ranges.ts';
import { assignmentCapacity } from '../../master/round-machine.ts';
import { secAggMisfit } from '../../master/secagg-config.ts';
import { autoShards, shardingMisfit } from '../../master/shards.ts';
import { envNumber, maxUpdateBytes, type TaskSpec } from '../../master/task-spec.ts';
import { firstWeightDifference, topologyWeights } from '../../model/topology.ts';
import { strategyMisfit } from '../../privacy/config.ts';
import { configMisfit } from '../../privacy/mechanism.ts';
import { deleteUpload, getUpload, missingChunks, readUpload, type WeightUpload } from '../../storage/weight-uploads.ts';
import { putWeights } from '../../storage/weights.ts';
import { createStrategy, StrategyConfigSchema } from '../../strategies/index.ts';
import { access } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { CreateTaskSchema, errors, TaskIdParam, TaskSchema, TaskSummarySchema, TimePageQuery } from '../schemas.ts';
import { aggregatorOf, loadTask, planOf, rulesOf, tensorEntries } from '../tasks-view.ts';

const MAX_TOPOLOGY_BYTES = 512 * 1024;

export const tasksApp = newRouter();

tasksApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks',
    operationId: 'createTask',
    tags: ['tasks'],
    summary: 'Create a task from a tfjs model topology and initial weights',
    ...access.operator,
    request: { body: { required: true, content: { 'application/json': { schema: CreateTaskSchema } } } },
    responses: { 201: { description: 'Created', content: { 'application/json': { schema: TaskSchema } } }, ...errors(400, 401, 403, 413, 422) },
  }),
  async (c) => {
    const body = c.req.valid('json');
    // Everything is checked before anything is stored: a refused task leaves nothing behind.
    const limits = sizeLimits(c.env);
    const { spec, plan, given } = await checkTaskDefinition(body, limits, () => givenWeights(c.env.MODELS, body, limits));
    const id = spec.taskId;
    const now = new Date();
    // A ranged task's version 0 is assembled by its range objects from the uploaded chunks (init does it).
    let blob = given.flat ? await putWeights(c.env.MODELS, id, 0, spec.tensors, given.flat) : null;
    try {
      // The Durable Object first: a task becomes visible (D1) only once its aggregator is ready.
      const assembled = await aggregatorOf(c.env, id).init({
        spec,
        plan,
        version0: blob ? { key: blob.key } : { upload: given.upload!.uploadId },
      });
      blob ??= assembled;
      if (!blob) throw new Error(`task ${id}: no version 0`);
      const db = database(c.env.DB);
      await db.batch([
        db.insert(tasks).values({
          id,
          name: body.name,
          modelTopology: body.modelTopology,
          weightSpecs: spec.tensors,
          numParams: spec.numParams,
          rules: spec.rules,
          plan,
          strategy: spec.strategy,
          privacy: spec.privacy ?? null,
          currentVersion: 0,
          maxClients: body.maxClients,
          createdAt: now,
        }),
        db.insert(modelVersions).values({
          taskId: id,
          version: 0,
          parentVersion: null,
          round: null,
          contentHash: blob.contentHash,
          r2Key: blob.key,
          byteLength: blob.byteLength,
          participants: 0,
          numExamples: 0,
          metrics: null,
          createdAt: now,
        }),
      ]);
    } catch (e) {
      // No D1 row names the blob, so nothing could ever read it: remove it (a crash here leaves an orphan under tasks/<id>/).
      if (blob) await c.env.MODELS.delete(blob.key).catch(() => {});
      throw e;
    }
    if (given.upload) await deleteUpload(c.env.MODELS, given.upload).catch(() => {});
    return c.json(await taskView(c.env, id), 201);
  },
);

/** The initial weights a task definition gives: inline (decoded and checked here), or an upload in chunks (checked complete). */
interface GivenWeights {
  tensors: { name: string; shape: number[] }[];
  numParams: number;
  /** The whole model, for tasks that hold it in one object; null for a ranged task's upload (its range objects read the chunks). */
  flat: Float32Array | null;
  upload: WeightUpload | null;
}

async function givenWeights(bucket: R2Bucket, body: z.infer<typeof CreateTaskSchema>, limits: { rangedAbove: number }): Promise<GivenWeights> {
  if ((body.initialWeights === undefined) === (body.initialWeightsUpload === undefined))
    throw new ApiError(
      'invalid_request',
      'give the initial weights either inline (initialWeights) or as an upload in chunks (initialWeightsUpload), not both or neither',
    );
  if (body.initialWeightsUpload !== undefined) {
    const upload = await getUpload(bucket, body.initialWeightsUpload);
    if (!upload)
      throw new ApiError('invalid_weights', `initialWeightsUpload: no weight upload "${body.initialWeightsUpload}" (POST /weight-uploads opens one)`);
    const built = topologyWeights(body.modelTopology);
    if (!built.ok) throw new ApiError('invalid_topology', `modelTopology: ${built.message}`);
    const tensors = built.weights.map((w) => ({ name: w.name, shape: w.shape }));
    for (const t of tensors) checkTensorName(t.name);
    const numParams = tensors.reduce((a, t) => a + elementCount(t.shape), 0);
    if (numParams !== upload.numParams)
      throw new ApiError('weights_mismatch', `the topology's weights have ${numParams} parameters; upload ${upload.uploadId} holds ${upload.numParams}`);
    const missing = await missingChunks(bucket, upload);
    if (missing.length > 0)
      throw new ApiError(
        'invalid_weights',
        `initialWeightsUpload: chunk${missing.length > 1 ? 's' : ''} ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', …' : ''} not received`,
      );
    return { tensors, numParams, flat: numParams > limits.rangedAbove ? null : await readUpload(bucket, upload), upload };
  }
  let decoded: DecodedMessage;
  try {
    decoded = decodeTensors(Uint8Array.from(atob(body.initialWeights!), (ch) => ch.charCodeAt(0)));
  } catch (e) {
    if (e instanceof WireFormatError) throw new ApiError('invalid_weights', `initialWeights: ${e.message}`);
    throw e;
  }
  if (decoded.tensors.length === 0) throw new ApiError('invalid_weights', 'initialWeights holds no tensors');
  for (const t of decoded.tensors) {
    checkTensorName(t.name);
    if (t.data.length === 0) throw new ApiError('invalid_weights', `tensor "${t.name}" has shape [${t.shape.join(',')}]: no parameters`);
  }
  const tensors = decoded.tensors.map((t) => ({ name: t.name, shape: t.shape }));
  const numParams = decoded.tensors.reduce((a, t) => a + t.data.length, 0);
  if (numParams > MAX_RANGED_PARAMS)
    throw new ApiError('payload_too_large', `the model has ${numParams} parameters; a task holds at most ${MAX_RANGED_PARAMS}`);
  const flat = concatTensors(decoded.tensors);
  const bad = firstNonFinite(flat, accumulateWasm);
  if (bad >= 0) throw new ApiError('non_finite', `initialWeights has a non-finite value at flat index ${bad}`);

  return { tensors, numParams, flat, upload: null };
}

function checkTensorName(name: string): void {
  if (!TENSOR_NAME_PATTERN.test(name))
    throw new ApiError(
      'invalid_weights',
      `tensor name ${JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)} (${name.length} characters) must be 1–256 letters, digits and _ . : / -`,
    );
}

/** Where models are split into parameter ranges, and how (the `RANGED_ABOVE_PARAMS` and `RANGE_PARAMS` settings). */
function sizeLimits(env: Env): { rangedAbove: number; rangeParams: number } {
  return { rangedAbove: envNumber(env.RANGED_ABOVE_PARAMS, RANGED_ABOVE_PARAMS), rangeParams: rangeParams(env.RANGE_PARAMS) };
}

/**
 * Validates a task definition: round rules against the strategy, the initial weights (`weights`:
 * decodable, named, finite, at most MAX_RANGED_PARAMS; split into ranges above `rangedAbove`),
 * and the topology against the weights.
 */
async function checkTaskDefinition(
  body: z.infer<typeof CreateTaskSchema>,
  limits: { rangedAbove: number; rangeParams: number },
  weights: () => Promise<GivenWeights>,
): Promise<{ spec: TaskSpec; plan: TrainingPlan; given: GivenWeights }> {
  const strategy = createStrategy(body.strategy);
  // Stored as the strategy states itself: its name and every parameter, defaults included.
  const config = StrategyConfigSchema.parse({ name: strategy.name, ...strategy.params });
  // An asynchronous strategy has no rounds: its buffer plays the round, closing when full.
  const buffer = strategy.asynchronous?.bufferSize;
  const goal = buffer === undefined ? {} : { clientsPerRound: buffer, minClients: buffer };
  // Under central DP clientsPerRound is the expected number of Poisson-drawn participants, which a
  // round reaches only half the time: its minimum defaults to 1, not to it.
  const minimum = body.privacy?.mode === 'central' ? 1 : body.rounds.clientsPerRound;
  const rules = { ...body.rounds, minClients: body.rounds.minClients ?? minimum, ...goal };
  if (rules.minClients > rules.clientsPerRound)
    throw new ApiError('invalid_request', `rounds.minClients (${rules.minClients}) exceeds rounds.clientsPerRound (${rules.clientsPerRound})`);
  const { privacy } = body;
  if (privacy) {
    // First: a strategy DP cannot run with is refused for that, whatever its own rules say.
    const combination = strategyMisfit(privacy, strategy);
    if (combination) throw new ApiError('invalid_strategy', combination);
    const privacyMisfit = configMisfit(privacy, rules.clientsPerRound);
    if (privacyMisfit) throw new ApiError('invalid_privacy', privacyMisfit);
  }
  const { secureAggregation, updateEncoding } = body;
  if (secureAggregation) {
    const secureMisfit =
      updateEncoding !== 'float32'
        ? `secure aggregation sends its own quantized words (its clipRange and fraction bits), not encoded updates: updateEncoding must be float32, not ${updateEncoding}`
        : secAggMisfit(secureAggregation, strategy, rules, privacy);
    if (secureMisfit) throw new ApiError('invalid_secure_aggregation', secureMisfit);
  }
  const misfit = strategy.checkRules?.(rules);
  if (misfit) throw new ApiError('invalid_strategy', misfit);
  const needs = {
    keepsUpdates: strategy.keeps === 'updates',
    asynchronous: strategy.asynchronous !== undefined,
    secureAggregation: !!secureAggregation,
  };
  const oneObject = needs.keepsUpdates || needs.asynchronous || needs.secureAggregation;
  const shards = body.shards === 'auto' ? (oneObject ? 1 : autoShards(assignmentCapacity(rules))) : body.shards;
  const shardMisfit = shardingMisfit(shards, needs, rules);
  if (shardMisfit) throw new ApiError('invalid_sharding', shardMisfit);

  const topologyJson = JSON.stringify(body.modelTopology);
  if (topologyJson.length > MAX_TOPOLOGY_BYTES)
    throw new ApiError('payload_too_large', `modelTopology is ${topologyJson.length} bytes; the limit is ${MAX_TOPOLOGY_BYTES}`);

  const given = await weights();
  const { tensors, numParams } = given;
  const ranges = rangeLayout(numParams, limits.rangedAbove, limits.rangeParams);
  if (ranges) {
    const rangedWhy = rangedMisfit({
      numParams,
      ...needs,
      changesUpdates: strategy.prepareUpdate !== undefined,
      privacy: privacy !== undefined,
      shards: body.shards === 'auto' ? 1 : shards,
    });
    if (rangedWhy) throw new ApiError('invalid_sharding', rangedWhy);
  }
  const built = topologyWeights(body.modelTopology);
  if (!built.ok) throw new ApiError('invalid_topology', `modelTopology: ${built.message}`);
  const difference = firstWeightDifference(built.weights, tensors);
  if (difference) throw new ApiError('weights_mismatch', difference);

  // FedProx's μ reaches the clients through the training plan they get at check-in.
  const plan = { ...body.plan, proximalMu: strategy.proximalMu ?? 0 };
  return {
    spec: {
      taskId: crypto.randomUUID(),
      tensors,
      numParams,
      rules,
      strategy: config,
      ...(privacy ? { privacy } : {}),
      ...(secureAggregation ? { secureAggregation } : {}),
      updateEncoding,
      // A ranged task's clients are served by the master alone (its ranges hold the chunks).
      shards: ranges ? 1 : shards,
      ...(ranges ? { ranges } : {}),
    },
    plan,
    given,
  };
}

tasksApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks',
    operationId: 'listTasks',
    tags: ['tasks'],
    summary: 'List tasks, newest first',
    ...access.operator,
    request: { query: TimePageQuery },
    responses: {
      200: { description: 'Tasks', content: { 'application/json': { schema: z.object({ tasks: z.array(TaskSummarySchema) }) } } },
      ...errors(401, 403),
    },
  }),
  async (c) => {
    const { limit, before } = c.req.valid('query');
    const rows = await listTasks(database(c.env.DB), limit, before === undefined ? undefined : Date.parse(before));
    return c.json({ tasks: rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() })) }, 200);
  },
);

tasksApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}',
    operationId: 'getTask',
    tags: ['tasks'],
    summary: "A task's configuration and live status (current version, open round)",
    ...access.operatorOrClient,
    request: { params: TaskIdParam },
    responses: { 200: { description: 'The task', content: { 'application/json': { schema: TaskSchema } } }, ...errors(401, 403, 404) },
  }),
  async (c) => c.json(await taskView(c.env, c.req.valid('param').taskId), 200),
);

export async function taskView(env: Env, taskId: string) {
  const row = await loadTask(env, taskId);
  const tensors = row.weightSpecs;
  const overview = await aggregatorOf(env, taskId).overview();
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    createdAt: row.createdAt.toISOString(),
    numParams: row.numParams,
    currentVersion: row.currentVersion,
    tensors: tensorEntries(tensors),
    rounds: rulesOf(row),
    plan: planOf(row),
    strategy: row.strategy,
    privacy: row.privacy ?? null,
    privacySpent: overview.privacySpent,
    secureAggregation: overview.secureAggregation,
    updateEncoding: overview.updateEncoding,
    shards: overview.shards,
    chunked: overview.ranges ? chunkedUpload(overview.ranges) : null,
    // A ranged task's requests carry one chunk each: its cap is a chunk's.
    maxUpdateBytes: overview.ranges ? maxChunkBytes(overview.updateEncoding, overview.ranges.params) : maxUpdateBytes({ numParams: row.numParams, tensors }),
    maxClients: row.maxClients,
    currentRound: overview.currentRound,
    modelTopology: row.modelTopology,
  };
}
