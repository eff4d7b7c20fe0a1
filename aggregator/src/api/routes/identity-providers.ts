/**
 * @module The identity providers a task trusts for enrollment by ID token (see ../id-tokens.ts):
 * add one (issuer, audience = the app's client id at the provider, JWKS URI), list, revoke.
 * Revoking a provider stops new enrollments with its tokens; the clients it enrolled keep working.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { createIdentityProvider, listIdentityProviders, revokeIdentityProvider } from '../../db/enrollment.ts';
import type { IdentityProviderRow } from '../../db/schema.ts';
import { database } from '../../db/store.ts';
import { access } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { jwksUriProblem } from '../id-tokens.ts';
import { newRouter } from '../router.ts';
import { errors, TaskIdParam, timestamp } from '../schemas.ts';
import { loadTask } from '../tasks-view.ts';

export const identityProvidersApp = newRouter();

const CreateIdentityProviderSchema = z
  .strictObject({
    issuer: z.string().min(1).max(500).describe('The `iss` of the ID tokens, e.g. https://your-tenant.auth0.com/'),
    audience: z.string().min(1).max(500).describe("The `aud` they must carry: the app's client id at the provider"),
    jwksUri: z.string().min(1).max(1000).describe('Where the issuer publishes its signing keys (https; http only on localhost)'),
    label: z.string().max(200).optional(),
    clientTokenTtlSeconds: z
      .number()
      .int()
      .min(60)
      .max(10 * 365 * 86_400)
      .optional()
      .describe('Lifetime of the client tokens it issues (default: no expiry)'),
  })
  .openapi('CreateIdentityProvider');

const IdentityProviderSchema = z
  .object({
    id: z.string(),
    taskId: z.string(),
    issuer: z.string(),
    audience: z.string(),
    jwksUri: z.string(),
    label: z.string().nullable(),
    status: z.enum(['active', 'revoked']),
    clientTokenTtlSeconds: z.number().int().nullable(),
    createdAt: timestamp,
    revokedAt: timestamp.nullable(),
  })
  .openapi('IdentityProvider');

const ProviderIdParam = TaskIdParam.extend({
  providerId: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: 'providerId', in: 'path' }, example: 'idp_9c…' }),
});

identityProvidersApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/identity-providers',
    operationId: 'addIdentityProvider',
    tags: ['enrollment'],
    summary: "Trust an identity provider's ID tokens for enrollment (one user, one client)",
    ...access.operator,
    request: { params: TaskIdParam, body: { required: true, content: { 'application/json': { schema: CreateIdentityProviderSchema } } } },
    responses: { 201: { description: 'The provider', content: { 'application/json': { schema: IdentityProviderSchema } } }, ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    const body = c.req.valid('json');
    await loadTask(c.env, taskId);
    const problem = jwksUriProblem(body.jwksUri);
    if (problem) throw new ApiError('invalid_request', problem);
    const row = await createIdentityProvider(database(c.env.DB), {
      id: `idp_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`,
      taskId,
      issuer: body.issuer,
      audience: body.audience,
      jwksUri: body.jwksUri,
      label: body.label ?? null,
      clientTtlSeconds: body.clientTokenTtlSeconds ?? null,
      createdAt: new Date(),
    });
    return c.json(view(row), 201);
  },
);

identityProvidersApp.openapi(
  createRoute({
    method: 'get',
    path: '/tasks/{taskId}/identity-providers',
    operationId: 'listIdentityProviders',
    tags: ['enrollment'],
    summary: 'The identity providers a task trusts, newest first',
    ...access.operator,
    request: { params: TaskIdParam },
    responses: {
      200: { description: 'Providers', content: { 'application/json': { schema: z.object({ providers: z.array(IdentityProviderSchema) }) } } },
      ...errors(401, 403, 404),
    },
  }),
  async (c) => {
    const { taskId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    return c.json({ providers: (await listIdentityProviders(database(c.env.DB), taskId)).map(view) }, 200);
  },
);

identityProvidersApp.openapi(
  createRoute({
    method: 'post',
    path: '/tasks/{taskId}/identity-providers/{providerId}/revoke',
    operationId: 'revokeIdentityProvider',
    tags: ['enrollment'],
    summary: 'Stop trusting a provider: no new enrollments with its tokens; the clients it enrolled keep working',
    ...access.operator,
    request: { params: ProviderIdParam },
    responses: { 200: { description: 'The revoked provider', content: { 'application/json': { schema: IdentityProviderSchema } } }, ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { taskId, providerId } = c.req.valid('param');
    await loadTask(c.env, taskId);
    const row = await revokeIdentityProvider(database(c.env.DB), taskId, providerId, new Date());
    if (!row) throw new ApiError('not_found', `task "${taskId}" has no identity provider "${providerId}"`);
    return c.json(view(row), 200);
  },
);

function view(r: IdentityProviderRow) {
  return {
    id: r.id,
    taskId: r.taskId,
    issuer: r.issuer,
    audience: r.audience,
    jwksUri: r.jwksUri,
    label: r.label,
    status: (r.revokedAt ? 'revoked' : 'active') as 'active' | 'revoked',
    clientTokenTtlSeconds: r.clientTtlSeconds,
    createdAt: r.createdAt.toISOString(),
    revokedAt: r.revokedAt?.toISOString() ?? null,
  };
}
