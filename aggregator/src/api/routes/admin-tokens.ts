/**
 * @module Operator tokens: mint, list, revoke, and rotate the admin credential without a restart.
 *
 * The `ADMIN_TOKEN` secret is the bootstrap credential (id `env`). Minting a token with
 * `retireCurrent` is a rotation: the token the request was made with stops working at once (for
 * the secret, its value's hash is recorded as retired; setting a new secret value is the recovery
 * path if every operator token is lost).
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AdminTokenRow } from '../../db/schema.ts';
import { adminTokens } from '../../db/schema.ts';
import { type Db, database, isRetiredAdminSecret, listAdminTokens, retireAdminSecret, revokeAdminToken } from '../../db/store.ts';
import { type AppEnv, access, ENV_ADMIN_TOKEN_ID, hashSecret, newAdminTokenId, newToken } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { newRouter } from '../router.ts';
import { AdminTokenIdParam, AdminTokenSchema, CreateAdminTokenSchema, errors, NewAdminTokenSchema } from '../schemas.ts';

export const adminTokensApp = newRouter();

adminTokensApp.openapi(
  createRoute({
    method: 'post',
    path: '/admin/tokens',
    operationId: 'createAdminToken',
    tags: ['admin'],
    summary: 'Mint an operator token (shown once); with retireCurrent, a rotation: the calling token stops working',
    ...access.operator,
    request: { body: { required: false, content: { 'application/json': { schema: CreateAdminTokenSchema } } } },
    responses: { 201: { description: 'The new token', content: { 'application/json': { schema: NewAdminTokenSchema } } }, ...errors(400, 401, 403) },
  }),
  async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : undefined;
    const db = database(c.env.DB);
    const id = newAdminTokenId();
    const { token, tokenHash } = await newToken(id);
    const now = new Date();
    const expiresAt = body?.expiresInSeconds === undefined ? null : new Date(now.getTime() + body.expiresInSeconds * 1000);
    await db.insert(adminTokens).values({ id, tokenHash, label: body?.label ?? null, createdAt: now, expiresAt });
    // Only once the new token is stored does the old one go: a failure here leaves both working.
    if (body?.retireCurrent) await revoke(c, db, callerTokenId(c), now);
    const row = { id, tokenHash, label: body?.label ?? null, createdAt: now, expiresAt, revokedAt: null };
    return c.json({ ...tokenView(row, false), token }, 201);
  },
);

adminTokensApp.openapi(
  createRoute({
    method: 'get',
    path: '/admin/tokens',
    operationId: 'listAdminTokens',
    tags: ['admin'],
    summary: 'Operator tokens, the ADMIN_TOKEN secret (`env`) first',
    ...access.operator,
    responses: {
      200: { description: 'Tokens', content: { 'application/json': { schema: z.object({ tokens: z.array(AdminTokenSchema) }) } } },
      ...errors(401, 403),
    },
  }),
  async (c) => {
    const db = database(c.env.DB);
    const current = callerTokenId(c);
    const secret = c.env.ADMIN_TOKEN;
    const envRetired = secret ? await isRetiredAdminSecret(db, await hashSecret(secret)) : true;
    const env = {
      id: ENV_ADMIN_TOKEN_ID,
      label: 'ADMIN_TOKEN secret',
      status: envRetired ? ('revoked' as const) : ('active' as const),
      current: current === ENV_ADMIN_TOKEN_ID,
      createdAt: null,
      expiresAt: null,
      revokedAt: null,
    };
    const rows = await listAdminTokens(db);
    return c.json({ tokens: [env, ...rows.map((r) => tokenView(r, r.id === current))] }, 200);
  },
);

adminTokensApp.openapi(
  createRoute({
    method: 'post',
    path: '/admin/tokens/{tokenId}/revoke',
    operationId: 'revokeAdminToken',
    tags: ['admin'],
    summary: 'Revoke an operator token at once (`env`: retire the current ADMIN_TOKEN value)',
    ...access.operator,
    request: { params: AdminTokenIdParam },
    responses: {
      200: { description: 'Revoked', content: { 'application/json': { schema: z.object({ id: z.string(), revoked: z.literal(true) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { tokenId } = c.req.valid('param');
    await revoke(c, database(c.env.DB), tokenId, new Date());
    return c.json({ id: tokenId, revoked: true as const }, 200);
  },
);

async function revoke(c: Context<AppEnv>, db: Db, tokenId: string, at: Date): Promise<void> {
  if (tokenId === ENV_ADMIN_TOKEN_ID) {
    if (!c.env.ADMIN_TOKEN) throw new ApiError('not_found', 'no ADMIN_TOKEN secret is set');
    await retireAdminSecret(db, await hashSecret(c.env.ADMIN_TOKEN), at);
    return;
  }
  if (!(await revokeAdminToken(db, tokenId, at))) throw new ApiError('not_found', `no operator token "${tokenId}"`);
}

function callerTokenId(c: Context<AppEnv>): string {
  const caller = c.get('caller');
  return caller.kind === 'admin' ? caller.tokenId : '';
}

function tokenView(r: AdminTokenRow, current: boolean, now = Date.now()) {
  return {
    id: r.id,
    label: r.label,
    status: r.revokedAt ? ('revoked' as const) : r.expiresAt && r.expiresAt.getTime() <= now ? ('expired' as const) : ('active' as const),
    current,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt?.toISOString() ?? null,
    revokedAt: r.revokedAt?.toISOString() ?? null,
  };
}
