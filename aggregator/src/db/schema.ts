/**
 * @module D1 schema (drizzle-orm): tasks, clients, rounds, participants, model versions.
 *
 * D1 holds metadata only. Weights live in R2; the live round (ledger, running sum) lives in the
 * task's Durable Object and is copied here when the round ends. Migrations in `migrations/` are
 * generated from this file by `npm run db:generate` (drizzle-kit).
 */
import { index, integer, primaryKey, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import type { TrainingPlan } from '#protocol/messages.ts';
import type { RoundRules } from '../master/round-machine.ts';
import type { TensorSpec } from '../master/task-spec.ts';
import type { PrivacyConfig } from '../privacy/config.ts';
import type { PrivacyRecord } from '../privacy/mechanism.ts';
import { DEFAULT_STRATEGY, type StrategyConfig } from '../strategies/config.ts';

/** Metric name → value (client-reported local metrics, or their example-weighted means). */
export type Metrics = Record<string, number>;
/** The strategy that produced a version: its name as the task was created with, and every parameter. */
export interface VersionStrategy {
  name: string;
  params: Record<string, number | string>;
}

export const tasks = sqliteTable('tasks', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** `active` while rounds run, `paused`, `stopped` (for good; see master/lifecycle.ts), `finished` (its privacy budget spent); reserved: `archived`. */
  status: text('status', { enum: ['active', 'paused', 'stopped', 'finished', 'archived'] })
    .notNull()
    .default('active'),
  /** The `modelTopology` of a tfjs `model.json`, as JSON text. */
  modelTopology: text('model_topology', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  /** `[{ name, shape, dtype }]` in wire order. */
  weightSpecs: text('weight_specs', { mode: 'json' }).$type<TensorSpec[]>().notNull(),
  numParams: integer('num_params').notNull(),
  /** Round rules and training plan, as validated at creation (see api/schemas.ts). */
  rules: text('rules', { mode: 'json' }).$type<RoundRules>().notNull(),
  plan: text('plan', { mode: 'json' }).$type<TrainingPlan>().notNull(),
  /** The aggregation strategy and its parameters (see strategies/index.ts). */
  strategy: text('strategy', { mode: 'json' }).$type<StrategyConfig>().notNull().default(DEFAULT_STRATEGY),
  /** Differential privacy (see privacy/config.ts); null: none. */
  privacy: text('privacy', { mode: 'json' }).$type<PrivacyConfig>(),
  currentVersion: integer('current_version').notNull().default(0),
  /** At most this many clients (registered and enrolled, revoked included): the bound on self-enrollment. */
  maxClients: integer('max_clients').notNull().default(10_000),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
});

export const clients = sqliteTable(
  'clients',
  {
    id: text('id').primaryKey(),
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id),
    /** SHA-256 (hex) of the client token's secret part; the token itself is never stored. */
    tokenHash: text('token_hash').notNull(),
    label: text('label'),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    /** When the current token stops working; null: never. */
    expiresAt: integer('expires_at', { mode: 'timestamp_ms' }),
    /** Lifetime given at creation: a rotated token gets it again (null: tokens never expire). */
    ttlSeconds: integer('ttl_seconds'),
    /** When the token was last replaced (rotation). */
    rotatedAt: integer('rotated_at', { mode: 'timestamp_ms' }),
    /** Set once by revocation: the client's tokens stop working for good. */
    revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }),
    /** The enrollment key the device enrolled itself with; null for clients the operator registered. */
    enrollmentKeyId: text('enrollment_key_id'),
    /** `<issuer> <subject>` of the ID token it enrolled with (one user, one client); null otherwise. */
    subject: text('subject'),
  },
  (t) => [index('clients_task_idx').on(t.taskId, t.createdAt), index('clients_enrollment_key_idx').on(t.enrollmentKeyId)],
);

/**
 * Publishable enrollment keys (`POST /v1/tasks/{id}/enrollment-keys`): shipped inside an app, they
 * let a device enroll itself as a client of one task, up to `maxClients` devices per key. Revoking
 * or expiring a key stops new enrollments; the clients it enrolled keep working.
 */
export const enrollmentKeys = sqliteTable(
  'enrollment_keys',
  {
    id: text('id').primaryKey(),
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id),
    /** SHA-256 (hex) of the key's secret part. */
    keyHash: text('key_hash').notNull(),
    label: text('label'),
    maxClients: integer('max_clients').notNull(),
    /** Lifetime of the tokens of the clients it enrolls (null: they never expire). */
    clientTtlSeconds: integer('client_ttl_seconds'),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    expiresAt: integer('expires_at', { mode: 'timestamp_ms' }),
    revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }),
  },
  (t) => [index('enrollment_keys_task_idx').on(t.taskId, t.createdAt)],
);

/**
 * Operator tokens minted through the API (`POST /v1/admin/tokens`), besides the `ADMIN_TOKEN`
 * secret: so the admin credential can be rotated without a restart or redeploy.
 */
export const adminTokens = sqliteTable('admin_tokens', {
  id: text('id').primaryKey(),
  /** SHA-256 (hex) of the token's secret part. */
  tokenHash: text('token_hash').notNull(),
  label: text('label'),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  expiresAt: integer('expires_at', { mode: 'timestamp_ms' }),
  revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }),
});

/**
 * Values of the `ADMIN_TOKEN` secret retired by rotation (their SHA-256): the secret stops working
 * without a redeploy; setting a new secret value brings the secret back (the recovery path).
 */
export const retiredAdminSecrets = sqliteTable('retired_admin_secrets', {
  tokenHash: text('token_hash').primaryKey(),
  retiredAt: integer('retired_at', { mode: 'timestamp_ms' }).notNull(),
});

export const modelVersions = sqliteTable(
  'model_versions',
  {
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id),
    version: integer('version').notNull(),
    parentVersion: integer('parent_version'),
    /** The round that produced it; null for the initial version. */
    round: integer('round'),
    /** SHA-256 (hex) of the weights blob; the R2 key is derived from it. */
    contentHash: text('content_hash').notNull(),
    r2Key: text('r2_key').notNull(),
    byteLength: integer('byte_length').notNull(),
    participants: integer('participants').notNull().default(0),
    numExamples: integer('num_examples').notNull().default(0),
    metrics: text('metrics', { mode: 'json' }).$type<Metrics>(),
    /** `{ name, params }` of the strategy that produced it; null for the initial version. */
    strategy: text('strategy', { mode: 'json' }).$type<VersionStrategy>(),
    /** The privacy spent up to this version (ε, δ, z, S, q, rounds, accountant); null without DP. */
    privacy: text('privacy', { mode: 'json' }).$type<PrivacyRecord>(),
    /** Metrics the operator measured on held-out data of its own (e.g. a simulation's test split). */
    serverMetrics: text('server_metrics', { mode: 'json' }).$type<Metrics>(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.version] })],
);

export const rounds = sqliteTable(
  'rounds',
  {
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id),
    round: integer('round').notNull(),
    status: text('status', { enum: ['closed', 'abandoned'] }).notNull(),
    baseVersion: integer('base_version').notNull(),
    resultVersion: integer('result_version'),
    assigned: integer('assigned').notNull(),
    accepted: integer('accepted').notNull(),
    rejected: integer('rejected').notNull(),
    /** Rejections by error code, e.g. `{ "non_finite": 2 }`. */
    rejectedByCode: text('rejected_by_code', { mode: 'json' }).$type<Record<string, number>>().notNull(),
    numExamples: integer('num_examples').notNull(),
    /** Example-weighted means of the clients' reported local metrics. */
    metrics: text('metrics', { mode: 'json' }).$type<Metrics>(),
    openedAt: integer('opened_at', { mode: 'timestamp_ms' }).notNull(),
    closedAt: integer('closed_at', { mode: 'timestamp_ms' }).notNull(),
    closeReason: text('close_reason').notNull(),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.round] })],
);

export const roundParticipants = sqliteTable(
  'round_participants',
  {
    taskId: text('task_id').notNull(),
    round: integer('round').notNull(),
    clientId: text('client_id').notNull(),
    numExamples: integer('num_examples').notNull(),
    /** Client-reported local metrics for this update. */
    metrics: text('metrics', { mode: 'json' }).$type<Metrics>(),
    acceptedAt: integer('accepted_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.round, t.clientId] }), index('participants_client_idx').on(t.clientId)],
);

/**
 * Federated evaluation: one row per (version, client, metric), so the example-weighted mean of
 * each metric is one GROUP BY, however many clients report.
 */
export const evaluationMetrics = sqliteTable(
  'evaluation_metrics',
  {
    taskId: text('task_id').notNull(),
    version: integer('version').notNull(),
    clientId: text('client_id').notNull(),
    name: text('name').notNull(),
    value: real('value').notNull(),
    numExamples: integer('num_examples').notNull(),
    reportedAt: integer('reported_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.version, t.clientId, t.name] })],
);

/**
 * Identity providers a task trusts for enrollment (`POST /v1/tasks/{id}/identity-providers`): a
 * device presents an ID token of the app's own sign-in (Auth0, Firebase, Clerk, Cognito…), verified
 * against the issuer's JWKS; its subject maps to one client.
 */
export const identityProviders = sqliteTable(
  'identity_providers',
  {
    id: text('id').primaryKey(),
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id),
    issuer: text('issuer').notNull(),
    audience: text('audience').notNull(),
    jwksUri: text('jwks_uri').notNull(),
    label: text('label'),
    /** Lifetime of the tokens of the clients it enrolls (null: they never expire). */
    clientTtlSeconds: integer('client_ttl_seconds'),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }),
  },
  (t) => [index('identity_providers_task_idx').on(t.taskId, t.issuer)],
);

export type TaskRow = typeof tasks.$inferSelect;
export type ModelVersionRow = typeof modelVersions.$inferSelect;
export type RoundRow = typeof rounds.$inferSelect;
export type ClientRow = typeof clients.$inferSelect;
export type AdminTokenRow = typeof adminTokens.$inferSelect;
export type IdentityProviderRow = typeof identityProviders.$inferSelect;
export type EnrollmentKeyRow = typeof enrollmentKeys.$inferSelect;
