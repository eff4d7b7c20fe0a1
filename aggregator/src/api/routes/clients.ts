/**
 * @module A task's clients: register, list, revoke, rotate a token.
 *
 * D1 holds the rows; every change to a credential is followed by a call that drops the row the
 * task's Durable Object caches, so it applies to the client's very next request in any isolate.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { ClientRow } from '../../db/schema.ts';
import { clients } from '../../db/schema.ts';
import { database, getClient, listClients, revokeClient, rotateClientToken } from '../../db/store.ts';
import { access, expiryAfter, newClientId, newToken } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { ClientCredentialsSchema, ClientIdParam, ClientSchema, CreateClientSchema, errors, TaskIdParam, TimePageQuery } from '../schemas.ts';
import { loadTask, serverOf } from '../tasks-view.ts';

export const clientsApp = newRouter();

clientsApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/clients',
    operationId: 'registerClient',
    tags: ['clients'],
    summary: 'Register a client; its token is returned once',
    ...access.operator,
    request: { params: TaskIdParam, body: { required: false, content: { 'application/json': { schema: CreateClientSchema } } } },
    responses: { 201: { description: 'Credentials', content: { 'application/json': { schema: ClientCredentialsSchema } } }, ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : undefined;
    const clientId = newClientId();
    const { token, tokenHash } = await newToken(clientId);
    const now = new Date();
    const ttlSeconds = body?.expiresInSeconds ?? null;
    const expiresAt = expiryAfter(now, ttlSeconds);
    await database(c.env.DB)
      .insert(clients)
      .values({ id: clientId, taskId, tokenHash, label: body?.label ?? null, createdAt: now, expiresAt, ttlSeconds });
    return c.json({ clientId, taskId, token, expiresAt: expiresAt?.toISOString() ?? null }, 201);
  },
);

clientsApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/clients',
    operationId: 'listClients',
    tags: ['clients'],
    summary: "A task's clients, newest first, with their token status",
    ...access.operator,
    request: { params: TaskIdParam, query: TimePageQuery },
    responses: {
      200: { description: 'Clients', content: { 'application/json': { schema: z.object({ clients: z.array(ClientSchema) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const { limit, before } = c.req.valid('query');
    await loadTask(c.env, taskId);
    const rows = await listClients(database(c.env.DB), taskId, limit, before === undefined ? undefined : Date.parse(before));
    return c.json({ clients: rows.map((r) => clientView(r)) }, 200);
  },
);

clientsApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/clients/{clientId}/revoke',
    operationId: 'revokeClient',
    tags: ['clients'],
    summary: 'Revoke a client: its token stops working at once, for good (its accepted updates still count)',
    ...access.operator,
    request: { params: ClientIdParam },
    responses: { 200: { description: 'The revoked client', content: { 'application/json': { schema: ClientSchema } } }, ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { taskId, clientId } = c.req.valid('param');
    const row = await revokeClient(database(c.env.DB), taskId, clientId, new Date());
    if (!row) throw await clientNotFound(c.env, taskId, clientId);
    await (await serverOf(c.env, taskId, clientId)).forgetClient(clientId);
    return c.json(clientView(row), 200);
  },
);

clientsApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/clients/{clientId}/token',
    operationId: 'rotateClientToken',
    tags: ['clients'],
    summary: 'Rotate a client token (the operator, or the client itself): a new token, the old one stops working at once',
    description: 'The new token gets the lifetime the client was registered with (`expiresInSeconds`), counted from now.',
    ...access.operatorOrClient,
    request: { params: ClientIdParam },
    responses: {
      200: { description: 'New credentials (shown once)', content: { 'application/json': { schema: ClientCredentialsSchema } } },
      ...errors(401, 403, 404, 409),
    },
  }),
  async (c) => {
    const { taskId, clientId } = c.req.valid('param');
    const caller = c.get('caller');
    if (caller.kind === 'client' && caller.clientId !== clientId) throw new ApiError('forbidden', 'a client may rotate only its own token');
    const db = database(c.env.DB);
    const current = await getClient(db, taskId, clientId);
    if (!current) throw await clientNotFound(c.env, taskId, clientId);
    if (current.revokedAt) throw new ApiError('client_revoked', `client "${clientId}" is revoked; register a new client instead`);
    const { token, tokenHash } = await newToken(clientId);
    const now = new Date();
    const expiresAt = expiryAfter(now, current.ttlSeconds);
    const row = await rotateClientToken(db, taskId, clientId, tokenHash, expiresAt, now);
    // Revoked between the read and the write: the rotation did not happen.
    if (!row) throw new ApiError('client_revoked', `client "${clientId}" is revoked; register a new client instead`);
    await (await serverOf(c.env, taskId, clientId)).forgetClient(clientId);
    return c.json({ clientId, taskId, token, expiresAt: expiresAt?.toISOString() ?? null }, 200);
  },
);

async function clientNotFound(env: Env, taskId: string, clientId: string): Promise<ApiError> {
  await loadTask(env, taskId); // task_not_found takes precedence
  return new ApiError('client_not_found', `task "${taskId}" has no client "${clientId}"`);
}

export function clientView(r: ClientRow, now = Date.now()) {
  const status = r.revokedAt ? 'revoked' : r.expiresAt && r.expiresAt.getTime() <= now ? 'expired' : 'active';
  return {
    clientId: r.id,
    label: r.label,
    status,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt?.toISOString() ?? null,
    rotatedAt: r.rotatedAt?.toISOString() ?? null,
    revokedAt: r.revokedAt?.toISOString() ?? null,
    enrollmentKeyId: r.enrollmentKeyId,
  } as const;
}
