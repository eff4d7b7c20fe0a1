/**
 * @module Self-enrollment: devices become clients of a task without the app running a backend.
 *
 * The operator creates a publishable enrollment key for a task (safe to ship inside an app, like a
 * public API key); a device posts it to `POST /v1/tasks/{id}/enroll` and gets its own client token.
 * What bounds it: each key enrolls at most its `maxClients` devices and the task holds at most its
 * `maxClients` clients (one atomic insert checks both); enrollments per source are rate-limited
 * (`ENROLLMENTS`), and wrong keys count as failed authentications of that source; keys expire and
 * can be revoked, which stops new enrollments and leaves the clients they enrolled alone. Or the
 * device presents an ID token of the app's own sign-in (../id-tokens.ts): one user, one client.
 * Enrolled clients are ordinary clients: revocation, expiry and rotation apply to them.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import {
  clientsOfTask,
  createEnrollmentKey,
  enrolledBy,
  enrollWithinCaps,
  getEnrollmentKey,
  listEnrollmentKeys,
  revokeEnrollmentKey,
} from '../../db/enrollment.ts';
import type { EnrollmentKeyRow } from '../../db/schema.ts';
import { type Db, database, getClient, rotateClientToken } from '../../db/store.ts';
import { type AppEnv, access, countingFailures, expiryAfter, hashSecret, newClientId, newToken, sourceOf } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { clientIdOf, type VerifiedIdentity, verifyIdToken } from '../id-tokens.ts';
import { newRouter } from '../router.ts';
import { ClientCredentialsSchema, errors, TaskIdParam, timestamp } from '../schemas.ts';
import { loadTask, serverOf } from '../tasks-view.ts';

export const enrollmentApp = newRouter();

const seconds = (max: number) => z.number().int().min(60).max(max);

const CreateEnrollmentKeySchema = z
  .strictObject({
    label: z.string().max(200).optional(),
    maxClients: z.number().int().min(1).max(10_000_000).default(1_000).describe('Devices this key may enroll (the task-wide `maxClients` applies too)'),
    expiresInSeconds: seconds(10 * 365 * 86_400)
      .optional()
      .describe('Lifetime of the key (default: until revoked)'),
    clientTokenTtlSeconds: seconds(10 * 365 * 86_400)
      .optional()
      .describe('Lifetime of the tokens of the clients it enrolls (default: no expiry); a rotation renews it'),
  })
  .openapi('CreateEnrollmentKey');

const EnrollmentKeySchema = z
  .object({
    id: z.string(),
    taskId: z.string(),
    label: z.string().nullable(),
    status: z.enum(['active', 'expired', 'revoked']),
    maxClients: z.number().int(),
    enrolled: z.number().int().describe('Clients it enrolled so far'),
    clientTokenTtlSeconds: z.number().int().nullable(),
    createdAt: timestamp,
    expiresAt: timestamp.nullable(),
    revokedAt: timestamp.nullable(),
  })
  .openapi('EnrollmentKey');

const NewEnrollmentKeySchema = EnrollmentKeySchema.extend({
  key: z.string().describe('The publishable key (`ek_…`): ship it in the app; shown once, the server keeps only its hash'),
}).openapi('NewEnrollmentKey');

const KeyIdParam = TaskIdParam.extend({
  keyId: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: 'keyId', in: 'path' }, example: 'ek_5d…' }),
});

const EnrollSchema = z
  .strictObject({
    key: z.string().min(1).max(200).optional().describe('An enrollment key of this task'),
    idToken: z
      .string()
      .min(1)
      .max(16_384)
      .optional()
      .describe("Or an ID token (JWT) of the app's sign-in, from an identity provider the task trusts: one user, one client"),
    label: z.string().max(200).optional().describe('How the operator sees this device in the client list'),
  })
  .refine((b) => (b.key === undefined) !== (b.idToken === undefined), 'give key or idToken, not both')
  .openapi('Enroll');

enrollmentApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/enrollment-keys',
    operationId: 'createEnrollmentKey',
    tags: ['enrollment'],
    summary: 'Create a publishable enrollment key; the key is returned once',
    ...access.operator,
    request: { params: TaskIdParam, body: { required: false, content: { 'application/json': { schema: CreateEnrollmentKeySchema } } } },
    responses: { 201: { description: 'The key', content: { 'application/json': { schema: NewEnrollmentKeySchema } } }, ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : CreateEnrollmentKeySchema.parse({});
    const id = `ek_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const { token: key, tokenHash: keyHash } = await newToken(id);
    const now = new Date();
    const row = await createEnrollmentKey(database(c.env.DB), {
      id,
      taskId,
      keyHash,
      label: body.label ?? null,
      maxClients: body.maxClients,
      clientTtlSeconds: body.clientTokenTtlSeconds ?? null,
      createdAt: now,
      expiresAt: body.expiresInSeconds === undefined ? null : new Date(now.getTime() + body.expiresInSeconds * 1000),
    });
    return c.json({ ...keyView(row, 0), key }, 201);
  },
);

enrollmentApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/enrollment-keys',
    operationId: 'listEnrollmentKeys',
    tags: ['enrollment'],
    summary: "A task's enrollment keys, newest first, with how many clients each enrolled",
    ...access.operator,
    request: { params: TaskIdParam },
    responses: {
      200: { description: 'Keys', content: { 'application/json': { schema: z.object({ keys: z.array(EnrollmentKeySchema) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const keys = await listEnrollmentKeys(database(c.env.DB), taskId);
    return c.json({ keys: keys.map((k) => keyView(k, k.enrolled)) }, 200);
  },
);

enrollmentApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/enrollment-keys/{keyId}/revoke',
    operationId: 'revokeEnrollmentKey',
    tags: ['enrollment'],
    summary: 'Revoke an enrollment key: no new enrollments with it; the clients it enrolled keep working',
    ...access.operator,
    request: { params: KeyIdParam },
    responses: { 200: { description: 'The revoked key', content: { 'application/json': { schema: EnrollmentKeySchema } } }, ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { taskId, keyId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const db = database(c.env.DB);
    const row = await revokeEnrollmentKey(db, taskId, keyId, new Date());
    if (!row) throw new ApiError('not_found', `task "${taskId}" has no enrollment key "${keyId}"`);
    return c.json(keyView(row, await enrolledBy(db, keyId)), 200);
  },
);

enrollmentApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/enroll',
    operationId: 'enroll',
    tags: ['enrollment'],
    summary: "A device enrolls itself with the task's enrollment key and gets its own client token (shown once)",
    security: [], // no token: the enrollment key is in the body
    request: { params: TaskIdParam, body: { required: true, content: { 'application/json': { schema: EnrollSchema } } } },
    responses: {
      200: { description: 'A user enrolling again: the same client, with a new token', content: { 'application/json': { schema: ClientCredentialsSchema } } },
      201: { description: 'The new client', content: { 'application/json': { schema: ClientCredentialsSchema } } },
      ...errors(400, 401, 404, 409, 429, 502),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const body = c.req.valid('json');
    await loadTask(c.env, taskId);
    const db = database(c.env.DB);
    if (body.idToken !== undefined) {
      const identity = await countingFailures(c, () => verifyIdToken(db, taskId, body.idToken!));
      await limitEnrollments(c.env, sourceOf(c));
      return enrollUser(c, db, taskId, identity, body.label);
    }
    const key = await countingFailures(c, () => verifyKey(c.env, taskId, body.key!));
    await limitEnrollments(c.env, sourceOf(c));
    const clientId = newClientId();
    const { token, tokenHash } = await newToken(clientId);
    const now = new Date();
    const ttlSeconds = key.clientTtlSeconds;
    const expiresAt = expiryAfter(now, ttlSeconds);
    const label = body.label ?? `enrolled with ${key.id}`;
    const enrolled = await enrollWithinCaps(
      db,
      { id: clientId, taskId, tokenHash, label, createdAt: now, expiresAt, ttlSeconds, enrollmentKeyId: key.id },
      key.maxClients,
    );
    if (!enrolled) {
      if ((await enrolledBy(db, key.id)) >= key.maxClients)
        throw new ApiError('enrollment_limit_reached', `enrollment key ${key.id} enrolled its ${key.maxClients} clients`);
      throw await taskFull(c.env, db, taskId);
    }
    return c.json({ clientId, taskId, token, expiresAt: expiresAt?.toISOString() ?? null }, 201);
  },
);

async function limitEnrollments(env: Env, source: string): Promise<void> {
  const { success } = await env.ENROLLMENTS.limit({ key: source });
  if (!success) throw new ApiError('rate_limited', 'too many enrollments from this source; retry later', { 'retry-after': '60' });
}

async function taskFull(env: Env, db: Db, taskId: string): Promise<ApiError> {
  const task = await loadTask(env, taskId);
  return new ApiError('enrollment_limit_reached', `task "${taskId}" holds its ${task.maxClients} clients (${await clientsOfTask(db, taskId)} now)`);
}

/**
 * A signed-in user's client: created on the first enrollment (within the task's cap), the same
 * client with a fresh token afterwards (the previous token stops working, as with a rotation).
 */
async function enrollUser(c: Context<AppEnv>, db: Db, taskId: string, identity: VerifiedIdentity, label: string | undefined) {
  const clientId = await clientIdOf(taskId, identity.subject);
  const { token, tokenHash } = await newToken(clientId);
  const now = new Date();
  const ttlSeconds = identity.provider.clientTtlSeconds;
  const expiresAt = expiryAfter(now, ttlSeconds);
  const existing = await getClient(db, taskId, clientId);
  if (existing) {
    if (existing.revokedAt) throw new ApiError('client_revoked', `this user's client ${clientId} is revoked`);
    const row = await rotateClientToken(db, taskId, clientId, tokenHash, expiresAt, now);
    if (!row) throw new ApiError('client_revoked', `this user's client ${clientId} is revoked`);
    await (await serverOf(c.env, taskId, clientId)).forgetClient(clientId);
    return c.json({ clientId, taskId, token, expiresAt: expiresAt?.toISOString() ?? null }, 200);
  }
  const client = {
    id: clientId,
    taskId,
    tokenHash,
    label: label ?? `signed in with ${identity.provider.issuer}`,
    createdAt: now,
    expiresAt,
    ttlSeconds,
    subject: identity.subject,
  };
  if (!(await enrollWithinCaps(db, client))) {
    // The same user enrolling twice at once: the other request created the client.
    if (await getClient(db, taskId, clientId)) throw new ApiError('duplicate_conflict', 'this user is enrolling from another request at the same time; retry');
    throw await taskFull(c.env, db, taskId);
  }
  return c.json({ clientId, taskId, token, expiresAt: expiresAt?.toISOString() ?? null }, 201);
}

/** The key row, if `presented` is a live enrollment key of `taskId`; an ApiError (401) otherwise. */
async function verifyKey(env: Env, taskId: string, presented: string): Promise<EnrollmentKeyRow> {
  const dot = presented.indexOf('.');
  const id = presented.slice(0, Math.max(dot, 0));
  if (dot <= 0 || !id.startsWith('ek_')) throw new ApiError('enrollment_key_invalid', 'not an enrollment key (ek_….…)');
  const row = await getEnrollmentKey(database(env.DB), id);
  // An unknown key, a wrong secret and another task's key look the same from outside.
  if (!row || row.taskId !== taskId || row.keyHash !== (await hashSecret(presented.slice(dot + 1))))
    throw new ApiError('enrollment_key_invalid', `not an enrollment key of task "${taskId}"`);
  if (row.revokedAt) throw new ApiError('enrollment_key_revoked', `enrollment key ${id} was revoked`);
  if (row.expiresAt && row.expiresAt.getTime() <= Date.now())
    throw new ApiError('enrollment_key_expired', `enrollment key ${id} expired at ${row.expiresAt.toISOString()}`);
  return row;
}

function keyView(r: EnrollmentKeyRow, enrolled: number) {
  const status = r.revokedAt ? 'revoked' : r.expiresAt && r.expiresAt.getTime() <= Date.now() ? 'expired' : 'active';
  return {
    id: r.id,
    taskId: r.taskId,
    label: r.label,
    status: status as 'active' | 'expired' | 'revoked',
    maxClients: r.maxClients,
    enrolled,
    clientTokenTtlSeconds: r.clientTtlSeconds,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt?.toISOString() ?? null,
    revokedAt: r.revokedAt?.toISOString() ?? null,
  };
}
