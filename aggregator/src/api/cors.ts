/**
 * @module CORS: client routes open to every origin (apps run in browsers), operator routes only to
 * the origins in `ADMIN_ORIGINS` (none by default), so a page elsewhere cannot drive the admin API
 * even with a token it tricked out of someone.
 *
 * Which routes are operator routes is read from the routes themselves (`access.operator`, which
 * sets both the guard and the declared security), so the list cannot drift from the code.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { cors } from 'hono/cors';
import { type AppEnv, access } from './auth.ts';

/** CORS for `router`, whose operator routes are known once every route is mounted (read lazily). */
export function corsByRoute(router: OpenAPIHono<AppEnv>, prefix: string) {
  let operatorRoutes: { method: string; path: RegExp }[] | null = null;
  const isOperatorRoute = (c: Context<AppEnv>): boolean => {
    operatorRoutes ??= router.openAPIRegistry.definitions.flatMap((d) => {
      if (d.type !== 'route' || JSON.stringify(d.route.security) !== JSON.stringify(access.operator.security)) return [];
      const pattern = d.route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+');
      return [{ method: d.route.method.toUpperCase(), path: new RegExp(`^${prefix}${pattern}$`) }];
    });
    const method = c.req.method === 'OPTIONS' ? (c.req.header('access-control-request-method') ?? 'OPTIONS').toUpperCase() : c.req.method;
    return operatorRoutes.some((r) => r.method === method && r.path.test(c.req.path));
  };
  return cors({
    origin: (origin, c: Context<AppEnv>) => {
      if (!isOperatorRoute(c)) return '*';
      const allowed = (c.env.ADMIN_ORIGINS ?? '')
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean);
      return allowed.includes(origin) ? origin : null;
    },
    allowHeaders: ['authorization', 'content-type'],
    allowMethods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
    exposeHeaders: ['retry-after', 'etag', 'fedge-replayed', 'www-authenticate'],
    maxAge: 86_400,
  });
}
