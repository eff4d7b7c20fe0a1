/**
 * @module Request and response schemas of the edge API (zod), from which the OpenAPI document is generated.
 */

import { z } from '@hono/zod-openapi';
import type { ChunkAck, ChunkCommit } from '#protocol/chunked.ts';
import { ERROR_STATUS, type ErrorCode } from '#protocol/codes.ts';
import { UPDATE_ENCODINGS } from '#protocol/encoding.ts';
import {
  type CheckInResponse,
  type ClientPrivacy,
  type ClientSecAgg,
  MAX_METRICS,
  METRIC_NAME_PATTERN,
  type ModelManifest,
  type TensorManifestEntry,
  type TrainingPlan,
  type UpdateAck,
  type VersionPrivacy,
} from '#protocol/messages.ts';
import { SecureAggregationSchema as SecureAggregationConfig } from '../master/secagg-config.ts';
import { CLIENTS_PER_SHARD, MAX_SHARDS } from '../master/shards.ts';
import { PrivacyConfigSchema } from '../privacy/config.ts';
import { DEFAULT_STRATEGY, StrategyConfigSchema } from '../strategies/config.ts';

const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

/**
 * Every time the API sends is an ISO 8601 date-time in UTC (`2026-12-02T14:03:05.123Z`); every
 * duration is a whole number of seconds in a field named `…Seconds`.
 */
export const timestamp = z.iso.datetime().openapi({ description: 'ISO 8601 date-time, UTC', example: '2026-12-02T14:03:05.123Z' });

/** `If-None-Match` of the immutable downloads: a 304 when it names the current ETag. */
export const ConditionalHeaders = z.object({
  'if-none-match': z.string().optional().openapi({ description: 'An ETag from an earlier download: 304 Not Modified when it still matches' }),
});

/** A version's weights: conditional, and resumable by byte range. */
export const RangeHeaders = ConditionalHeaders.extend({
  range: z
    .string()
    .optional()
    .openapi({ description: 'One `bytes=START-END`, `bytes=START-` or `bytes=-N` range: 206 with those bytes (a resumed download); past the end: 416' }),
});

export const TaskIdParam = z.object({
  taskId: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: 'taskId', in: 'path' }, example: 'a3c1…' }),
});
export const VersionParam = TaskIdParam.extend({
  version: z.coerce
    .number()
    .int()
    .min(0)
    .openapi({ param: { name: 'version', in: 'path', required: true }, type: 'integer', example: 3 }),
});
export const RoundParam = TaskIdParam.extend({
  round: z.coerce
    .number()
    .int()
    .min(1)
    .openapi({ param: { name: 'round', in: 'path', required: true }, type: 'integer', example: 1 }),
});
const limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(200)
  .default(50)
  .openapi({ param: { name: 'limit', in: 'query' }, type: 'integer', description: 'At most this many items (default 50)' });
/** Paging by number (versions, rounds): `before` = the last number shown. */
export const PageQuery = z.object({
  limit,
  before: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .openapi({ param: { name: 'before', in: 'query' }, type: 'integer', description: 'Only items with a smaller number: the last one shown, to page back' }),
});
/** Paging by creation time (tasks, clients): `before` = the `createdAt` of the last item shown. */
export const TimePageQuery = z.object({
  limit,
  before: z.iso
    .datetime()
    .optional()
    .openapi({
      param: { name: 'before', in: 'query' },
      description: 'Only items created before this time (ISO 8601): the `createdAt` of the last one shown, to page back',
    }),
});

export const RoundRulesSchema = z
  .object({
    clientsPerRound: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(10)
      .describe('Accepted updates that close a round at once (goal count); under central DP, the expected number of participants (no goal)'),
    minClients: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .optional()
      .describe('Fewest accepted updates with which a round closes at its deadline (default: clientsPerRound; 1 under central DP)'),
    deadlineSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .default(600)
      .describe("Seconds from a round's first assignment to its deadline"),
    overSelection: z.number().min(1).max(3).default(1.3).describe('Clients assigned per round = ceil(clientsPerRound × overSelection)'),
    maxExamplesPerClient: z.number().int().min(1).max(1_000_000_000).default(100_000).describe('Cap on the example count one update may claim'),
  })
  .strict()
  .openapi('RoundRules');

export const TrainingPlanSchema = z
  .object({
    epochs: z.number().int().min(1).max(1000).default(1),
    batchSize: z.number().int().min(1).max(1_000_000).default(32),
    learningRate: z.number().positive().max(100).default(0.01),
    optimizer: z.enum(['sgd', 'adam']).default('sgd'),
    loss: z.enum(['categoricalCrossentropy', 'sparseCategoricalCrossentropy', 'binaryCrossentropy', 'meanSquaredError']).default('categoricalCrossentropy'),
    proximalMu: z.number().min(0).max(100).default(0).describe('FedProx μ: set from the task strategy `fedprox`, 0 otherwise'),
  })
  .strict()
  .openapi('TrainingPlan');

/** A task's aggregation strategy (its schema lives with the strategies); unknown names and out-of-range parameters are `invalid_strategy`. */
export const StrategySchema = StrategyConfigSchema.openapi('Strategy');

/** A task's differential privacy (its schema lives with the privacy code); bad values and misfits are `invalid_privacy`. */
export const PrivacySchema = PrivacyConfigSchema.openapi('Privacy');

/** A task's secure aggregation (its schema lives with the round's phases); misfits are `invalid_secure_aggregation`. */
export const SecureAggregationSchema = SecureAggregationConfig.openapi('SecureAggregation');

/** How clients encode their updates (protocol/encoding.ts). */
export const UpdateEncodingSchema = z
  .enum(UPDATE_ENCODINGS as ['float32', 'float16', 'int8'])
  .describe(
    "How clients encode their updates: 'float32' (4 bytes a parameter), 'float16' (2, rounded to nearest), or 'int8' (1, plus a float32 scale per 256 parameters; stochastic rounding, unbiased). Model versions stay float32",
  )
  .openapi('UpdateEncoding');

export const ChunkedUploadSchema = z
  .object({
    chunkParams: z.number().int().describe('Parameters per chunk (the last chunk holds the rest)'),
    chunks: z.number().int().describe('Chunks of one update'),
  })
  .openapi('ChunkedUpload');

export const CreateTaskSchema = z
  .object({
    name: z.string().min(1).max(200),
    modelTopology: z.record(z.string(), z.unknown()).describe('The `modelTopology` of a TensorFlow.js model.json'),
    initialWeights: z
      .base64()
      .optional()
      .describe('Base64 of a safetensors message holding every weight of the model, float32, in model.weights order (or initialWeightsUpload)'),
    initialWeightsUpload: z
      .string()
      .optional()
      .describe("For models too large for one request: a weight upload's id (POST /weight-uploads), whose chunks are all sent; instead of initialWeights"),
    rounds: RoundRulesSchema.prefault({}),
    plan: TrainingPlanSchema.prefault({}),
    strategy: StrategySchema.prefault(DEFAULT_STRATEGY),
    privacy: PrivacySchema.optional().describe('Differential privacy: central DP-FedAvg or local DP; absent: none'),
    secureAggregation: SecureAggregationSchema.optional().describe(
      'Secure aggregation (SecAgg+): the aggregator learns only the sum of each round; absent: none',
    ),
    updateEncoding: UpdateEncodingSchema.default('float32'),
    shards: z
      .union([z.number().int().min(1).max(MAX_SHARDS), z.literal('auto')])
      .default('auto')
      .describe(
        `Aggregator shards a round is spread over (1 to ${MAX_SHARDS}), each a Durable Object serving the clients hashed to it; "auto": one per ${CLIENTS_PER_SHARD} assignments of a round, and 1 for strategies that need every update, FedBuff and secure aggregation (invalid_sharding if set otherwise)`,
      ),
    maxClients: z
      .number()
      .int()
      .min(1)
      .max(10_000_000)
      .default(10_000)
      .describe('At most this many clients, registered or enrolled (revoked ones included): bounds self-enrollment'),
  })
  .strict()
  .openapi('CreateTask');

export const TensorEntrySchema = z.object({ name: z.string(), shape: z.array(z.number().int()), dtype: z.literal('float32') }).openapi('TensorEntry');

export const LiveRoundSchema = z
  .object({
    round: z.number().int(),
    status: z.enum(['open', 'closing', 'closed', 'abandoned']),
    baseVersion: z.number().int(),
    openedAt: timestamp,
    deadlineAt: timestamp.nullable().describe('When the round closes by its deadline; null until a first client is assigned (the deadline clock starts then)'),
    assigned: z.number().int(),
    accepted: z.number().int(),
    rejected: z.number().int(),
    rejectedByCode: z.record(z.string(), z.number()),
  })
  .openapi('LiveRound');

export const TaskSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.string(),
    createdAt: timestamp,
    numParams: z.number().int(),
    currentVersion: z.number().int(),
    tensors: z.array(TensorEntrySchema),
    rounds: RoundRulesSchema.required(),
    plan: TrainingPlanSchema,
    strategy: StrategySchema,
    privacy: PrivacySchema.nullable().describe('The differential privacy the task runs under, as validated (null: none)'),
    secureAggregation: SecureAggregationSchema.nullable().describe('The secure aggregation the task runs, as validated (null: none)'),
    updateEncoding: UpdateEncodingSchema,
    shards: z.number().int().min(1).describe('Aggregator shards a round is spread over (1: the master alone)'),
    chunked: ChunkedUploadSchema.nullable().describe('A model split into parameter ranges: how its updates are sent in chunks (null: whole)'),
    privacySpent: z
      .object({
        rounds: z.number().int().describe('Versions released under DP so far'),
        epsilon: z.number().describe('ε at privacy.delta spent so far'),
        clipNorm: z.number().describe("The next round's clip norm (fixed, or where adaptive clipping moved it)"),
        exhausted: z.boolean().describe('The budget allows no further round: the task finished'),
      })
      .nullable()
      .describe('What the task has spent of its privacy (null: no DP)'),
    maxUpdateBytes: z.number().int().describe('The largest update body the task takes (a ranged task: the largest chunk body)'),
    maxClients: z.number().int(),
    currentRound: LiveRoundSchema.nullable(),
    modelTopology: z.record(z.string(), z.unknown()),
  })
  .openapi('Task');

export const TaskSummarySchema = z
  .object({ id: z.string(), name: z.string(), status: z.string(), numParams: z.number().int(), currentVersion: z.number().int(), createdAt: timestamp })
  .openapi('TaskSummary');

const expiresInSeconds = z
  .number()
  .int()
  .min(60)
  .max(10 * 365 * 86_400)
  .optional()
  .describe('Lifetime of the token in seconds (default: no expiry); a rotation renews it');

export const CreateClientSchema = z.strictObject({ label: z.string().max(200).optional(), expiresInSeconds }).openapi('CreateClient');
export const ClientIdParam = TaskIdParam.extend({
  clientId: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: 'clientId', in: 'path' }, example: 'c_3f…' }),
});
export const ClientCredentialsSchema = z
  .object({
    clientId: z.string(),
    taskId: z.string(),
    token: z.string().describe('Shown once; the server keeps only its hash'),
    expiresAt: timestamp.nullable().describe('When this token stops working (null: never)'),
  })
  .openapi('ClientCredentials');
const credentialStatus = z.enum(['active', 'expired', 'revoked']);
export const ClientSchema = z
  .object({
    clientId: z.string(),
    label: z.string().nullable(),
    status: credentialStatus,
    createdAt: timestamp,
    expiresAt: timestamp.nullable(),
    rotatedAt: timestamp.nullable(),
    revokedAt: timestamp.nullable(),
    enrollmentKeyId: z.string().nullable().describe('The enrollment key it enrolled itself with (null: registered by the operator)'),
  })
  .openapi('Client');

export const CreateAdminTokenSchema = z
  .strictObject({
    label: z.string().max(200).optional(),
    expiresInSeconds,
    retireCurrent: z.boolean().default(false).describe('Rotation: the token this request was made with stops working (the ADMIN_TOKEN secret included)'),
  })
  .openapi('CreateAdminToken');
export const AdminTokenIdParam = z.object({
  tokenId: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: 'tokenId', in: 'path' }, example: 'a_91…' }),
});
export const AdminTokenSchema = z
  .object({
    id: z.string().describe('`env` is the ADMIN_TOKEN secret'),
    label: z.string().nullable(),
    status: credentialStatus,
    current: z.boolean().describe('Whether this request was made with it'),
    createdAt: timestamp.nullable(),
    expiresAt: timestamp.nullable(),
    revokedAt: timestamp.nullable(),
  })
  .openapi('AdminToken');
export const NewAdminTokenSchema = AdminTokenSchema.extend({ token: z.string().describe('Shown once; the server keeps only its hash') }).openapi(
  'NewAdminToken',
);

export const ClientSecAggSchema = z
  .object({
    clipRange: z.number().describe('c: clip each coordinate of Δ to [−c, c]'),
    fractionBits: z.number().int().describe('f: scale by 2^f before rounding to an integer modulo 2³²'),
    maxExamples: z.number().int().describe('W: the weight folded into the update is numExamples / W'),
    phaseSeconds: z.number().int().describe('Deadline of each key phase, from its start'),
  })
  .openapi('ClientSecAgg');

export const ClientPrivacySchema = z
  .object({
    mode: z.enum(['central', 'local']),
    clipNorm: z.number().describe('Clip the update to this L2 norm before sending it'),
    noiseMultiplier: z.number().describe('Local DP: add Gaussian noise of σ = noiseMultiplier × clipNorm on the device; 0 under central DP'),
    delta: z.number(),
    reportUnclipped: z.boolean().describe('Adaptive clipping: send metadata `fedge.unclipped` (1 if the norm was ≤ clipNorm before clipping, else 0)'),
  })
  .openapi('ClientPrivacy');

export const VersionPrivacySchema = z
  .object({
    mode: z.enum(['central', 'local']),
    accountant: z.string(),
    epsilon: z.number().describe('ε at delta spent by every release up to and including this one'),
    delta: z.number(),
    noiseMultiplier: z.number(),
    clipNorm: z.number(),
    samplingRate: z.number(),
    rounds: z.number().int(),
    clipping: z.enum(['server', 'client', 'local']),
    epsilonPerRound: z.number().optional(),
    adaptiveClipping: z
      .object({ targetQuantile: z.number(), learningRate: z.number(), countNoise: z.number(), updateNoiseMultiplier: z.number(), nextClipNorm: z.number() })
      .optional(),
    epsilonBudget: z.number().nullable(),
  })
  .openapi('VersionPrivacy');

export const CheckInSchema = z
  .discriminatedUnion('status', [
    z.object({
      status: z.literal('assigned'),
      taskId: z.string(),
      round: z.number().int(),
      baseVersion: z.number().int(),
      deadlineAt: timestamp.describe('Submit before this: the round closes at its deadline'),
      plan: TrainingPlanSchema,
      privacy: ClientPrivacySchema.optional(),
      secureAggregation: ClientSecAggSchema.optional().describe('Present when the task runs secure aggregation: run its four phases instead of `PUT …/update`'),
      updateEncoding: UpdateEncodingSchema.optional().describe('Present when the task takes compressed updates: encode Δ this way (absent: float32)'),
      chunked: ChunkedUploadSchema.optional().describe(
        'Present for models split into parameter ranges: send the update in these chunks (`PUT …/update/chunks/{k}`), then commit it (`POST …/update/commit`)',
      ),
    }),
    z.object({
      status: z.literal('retry_later'),
      taskId: z.string(),
      retryAfterSeconds: z.number().int(),
      reason: z
        .enum(['round_full', 'round_closing', 'already_submitted', 'task_paused', 'not_sampled'])
        .describe("`not_sampled`: a DP task's Poisson sampling left this client out of this round"),
    }),
  ])
  .openapi('CheckIn');

/** 1 to 32 named finite numbers; names match METRIC_NAME_PATTERN (a letter first, so never `__proto__`). */
export const MetricsSchema = z
  .record(z.string().regex(METRIC_NAME_PATTERN), z.number().refine(Number.isFinite, 'must be finite'))
  .refine((m) => Object.keys(m).length >= 1 && Object.keys(m).length <= MAX_METRICS, `between 1 and ${MAX_METRICS} metrics`);

export const FederatedEvaluationSchema = z
  .object({ clients: z.number().int(), numExamples: z.number().int(), metrics: z.record(z.string(), z.number()) })
  .openapi('FederatedEvaluation');

export const EvaluationReportSchema = z.strictObject({ numExamples: z.number().int().min(1), metrics: MetricsSchema }).openapi('EvaluationReport');

export const ServerMetricsSchema = z.strictObject({ metrics: MetricsSchema }).openapi('ServerMetrics');

export const ModelManifestSchema = z
  .object({
    taskId: z.string(),
    version: z.number().int(),
    parentVersion: z.number().int().nullable(),
    round: z.number().int().nullable(),
    contentHash: z.string().describe('SHA-256 (hex) of the weights blob; also its ETag'),
    byteLength: z.number().int(),
    tensors: z.array(TensorEntrySchema),
    participants: z.number().int(),
    numExamples: z.number().int(),
    metrics: z.record(z.string(), z.number()).nullable(),
    strategy: z
      .object({ name: z.string(), params: z.record(z.string(), z.union([z.number(), z.string()])) })
      .nullable()
      .describe('The strategy that produced this version, by the name the task was created with (null for version 0)'),
    privacy: VersionPrivacySchema.nullable().describe('The privacy spent up to this version (null: made without differential privacy)'),
    serverMetrics: z.record(z.string(), z.number()).nullable().describe("The operator's own held-out evaluation (PUT …/server-metrics)"),
    federatedEvaluation: FederatedEvaluationSchema.nullable().describe("Clients' evaluations of this version on their local data, example-weighted"),
    createdAt: timestamp,
    weightsUrl: z.string(),
  })
  .openapi('ModelManifest');

export const UpdateAckSchema = z
  .object({
    taskId: z.string(),
    round: z.number().int(),
    clientId: z.string(),
    seq: z.number().int(),
    numExamples: z.number().int(),
    bodySha256: z.string(),
    acceptedAt: timestamp,
  })
  .openapi('UpdateAck');

export const ChunkAckSchema = z
  .object({
    round: z.number().int(),
    index: z.number().int(),
    bodySha256: z.string().describe('SHA-256 (hex) of the stored chunk: the commit names it'),
    replayed: z.boolean().describe('This chunk had already been stored with these bytes'),
  })
  .openapi('ChunkAck');

export const ChunkCommitSchema = z
  .strictObject({
    baseVersion: z.number().int().min(0),
    numExamples: z.number().int().min(1),
    metrics: MetricsSchema.optional(),
    chunks: z
      .array(z.string().regex(/^[0-9a-f]{64}$/))
      .min(1)
      .max(65_536)
      .describe("Each chunk's SHA-256 (hex, as its ack said), in chunk order"),
  })
  .openapi('ChunkCommit');

export const ChunkParam = RoundParam.extend({
  index: z.coerce
    .number()
    .int()
    .min(0)
    .openapi({ param: { name: 'index', in: 'path', required: true }, type: 'integer', example: 0 }),
});

export const RoundSchema = z
  .object({
    round: z.number().int(),
    status: z.enum(['open', 'closing', 'closed', 'abandoned']),
    baseVersion: z.number().int(),
    resultVersion: z.number().int().nullable(),
    assigned: z.number().int(),
    accepted: z.number().int(),
    rejected: z.number().int(),
    rejectedByCode: z.record(z.string(), z.number()),
    numExamples: z.number().int().nullable(),
    metrics: z.record(z.string(), z.number()).nullable(),
    openedAt: timestamp,
    closedAt: timestamp.nullable(),
    closeReason: z.string().nullable(),
    deadlineAt: timestamp.nullable(),
  })
  .openapi('Round');

export const ParticipantSchema = z
  .object({ clientId: z.string(), numExamples: z.number().int(), metrics: z.record(z.string(), z.number()).nullable(), acceptedAt: timestamp })
  .openapi('Participant');

export type ErrorStatus = 400 | 401 | 403 | 404 | 408 | 409 | 413 | 415 | 416 | 422 | 429 | 500 | 502;

/** What each error status sends along: 401 says how to authenticate, 429 when to come back. */
const ERROR_HEADERS: Partial<Record<ErrorStatus, Record<string, { description: string; schema: { type: 'string' | 'integer'; minimum?: number } }>>> = {
  401: {
    'WWW-Authenticate': {
      description: 'Bearer, with the reason (RFC 6750): `error="invalid_token"` for a wrong, expired or revoked token',
      schema: { type: 'string' },
    },
  },
  429: { 'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'integer', minimum: 0 } } },
};

/** The codes sent with a status. */
function codesOf(status: ErrorStatus): [ErrorCode, ...ErrorCode[]] {
  return ERROR_CODES.filter((c) => ERROR_STATUS[c] === status) as [ErrorCode, ...ErrorCode[]];
}

/** One error body schema per status (`Error401`, …), its `code` an enum of exactly the codes sent with that status. */
const errorSchemaOf = new Map<ErrorStatus, z.ZodType>();
function errorSchema(status: ErrorStatus): z.ZodType {
  let schema = errorSchemaOf.get(status);
  if (!schema) {
    schema = z
      .object({
        error: z.object({
          code: z.enum(codesOf(status)).describe('Stable error code (README: error codes)'),
          message: z.string().describe('For people: what failed and why'),
        }),
      })
      .openapi(`Error${status}`);
    errorSchemaOf.set(status, schema);
  }
  return schema;
}

/** Standard error responses, by status, for route definitions; each names the codes sent with its status. */
export function errors(...statuses: ErrorStatus[]) {
  return Object.fromEntries(
    statuses.map((s) => {
      const codes = codesOf(s).map((c) => `\`${c}\``);
      const headers = ERROR_HEADERS[s];
      return [s, { description: `Error: ${codes.join(', ')}`, content: { 'application/json': { schema: errorSchema(s) } }, ...(headers ? { headers } : {}) }];
    }),
  );
}

/**
 * The protocol's wire types (client-sdk/src/protocol/messages.ts: what the SDK compiles against)
 * and these schemas (what the server validates, sends and documents) describe the same JSON. Each
 * pair is checked both ways at compile time, so a field changed on one side only fails `tsc`.
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Expect<T extends true> = T;
export type WireTypesMatchTheirSchemas = [
  Expect<Same<z.output<typeof TrainingPlanSchema>, TrainingPlan>>,
  Expect<Same<z.output<typeof CheckInSchema>, CheckInResponse>>,
  Expect<Same<z.output<typeof UpdateAckSchema>, UpdateAck>>,
  Expect<Same<z.output<typeof ChunkAckSchema>, ChunkAck>>,
  Expect<Same<z.output<typeof ChunkCommitSchema>, ChunkCommit>>,
  Expect<Same<z.output<typeof TensorEntrySchema>, TensorManifestEntry>>,
  Expect<Same<z.output<typeof ModelManifestSchema>, ModelManifest>>,
  Expect<Same<z.output<typeof VersionPrivacySchema>, VersionPrivacy>>,
  Expect<Same<z.output<typeof ClientPrivacySchema>, ClientPrivacy>>,
  Expect<Same<z.output<typeof ClientSecAggSchema>, ClientSecAgg>>,
];
