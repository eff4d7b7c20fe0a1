/**
 * @module Bearer-token authentication: operator tokens and per-client tokens.
 *
 * Tokens are `<id>.<secret>`; D1 keeps only SHA-256(secret). Client ids start `c_`, operator
 * token ids `a_`. The operator's bootstrap credential is the `ADMIN_TOKEN` secret (locally,
 * `.dev.vars`, written by `npm start`); rotating it through the API retires that value without a
 * restart. A client token is checked by its task's Durable Object, which caches the D1 row, so a
 * revocation is effective at once in every isolate.
 *
 * 401 (with `WWW-Authenticate`) when no valid token was presented: missing, unknown, expired,
 * revoked. 403 when a valid token may not do this. Failed authentications count per source
 * (`CF-Connecting-IP`) against the `AUTH_FAILURES` rate limit; a source over it gets 429 for the
 * rest of the window, before any lookup.
 */
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { database, getAdminToken, getClientCredential, isRetiredAdminSecret } from '../db/store.ts';
import { storedCredential, verifyCredential } from '../master/credentials.ts';
import { sha256Hex } from '../storage/weights.ts';
import { ApiError } from './errors.ts';
import { serverOf } from './tasks-view.ts';

export type Caller = { kind: 'admin'; tokenId: string } | { kind: 'client'; clientId: string; taskId: string };

export type AppEnv = { Bindings: Env; Variables: { caller: Caller } };

/** The pseudo id of the `ADMIN_TOKEN` secret in token listings and revocations. */
export const ENV_ADMIN_TOKEN_ID = 'env';

/** Makes a new token for `id` and the hash to store for it. */
export async function newToken(id: string): Promise<{ token: string; tokenHash: string }> {
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { token: `${id}.${secret}`, tokenHash: await hashSecret(secret) };
}

/** When a token with this lifetime, issued at `now`, stops working (null: never). */
export function expiryAfter(now: Date, ttlSeconds: number | null): Date | null {
  return ttlSeconds === null ? null : new Date(now.getTime() + ttlSeconds * 1000);
}

export function newClientId(): string {
  return `c_${crypto.randomUUID().replace(/-/g, '')}`;
}

export function newAdminTokenId(): string {
  return `a_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

export function hashSecret(secret: string): Promise<string> {
  return sha256Hex(new TextEncoder().encode(secret));
}

/** Sources over the failure limit in this isolate, until the end of the limiter's window. */
const blockedSources = new Map<string, number>();
const AUTH_FAILURE_WINDOW_MS = 10_000;
const MAX_BLOCKED_SOURCES = 10_000;

/** The calling source, for per-source limits (Cloudflare sets `CF-Connecting-IP`). */
export function sourceOf(c: Context<AppEnv>): string {
  return c.req.header('cf-connecting-ip') ?? 'unknown';
}

/** Who is calling: an operator or a client of some task; any failure is an ApiError (401/403/429). */
async function identify(c: Context<AppEnv>): Promise<Caller> {
  const match = c.req.header('authorization')?.match(/^Bearer\s+(\S+)$/i);
  const token = match?.[1];
  if (token !== undefined) {
    const admin = c.env.ADMIN_TOKEN;
    // The bootstrap secret first: comparing digests is cheap and needs no lookup of a client.
    if (admin && (await timingSafeEqualText(token, admin))) {
      if (await isRetiredAdminSecret(database(c.env.DB), await hashSecret(admin)))
        throw new ApiError('token_revoked', 'this ADMIN_TOKEN value was retired by a rotation; use the token it was rotated to');
      return { kind: 'admin', tokenId: ENV_ADMIN_TOKEN_ID };
    }
  }
  return countingFailures(c, () => {
    if (token === undefined)
      throw new ApiError('unauthorized', 'missing bearer token (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer realm="fedge"' });
    return verifyToken(c, token);
  });
}

/**
 * Runs a credential check for the calling source: a source over the failure limit gets 429 before
 * any lookup, and a check that fails with a 401 counts against it.
 */
export async function countingFailures<T>(c: Context<AppEnv>, check: () => Promise<T>): Promise<T> {
  const source = sourceOf(c);
  const blockedUntil = blockedSources.get(source);
  if (blockedUntil !== undefined) {
    if (blockedUntil > Date.now()) throw rateLimited(blockedUntil - Date.now());
    blockedSources.delete(source);
  }
  try {
    return await check();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) await countFailure(c, source);
    throw e;
  }
}

async function verifyToken(c: Context<AppEnv>, token: string): Promise<Caller> {
  const dot = token.indexOf('.');
  const id = token.slice(0, Math.max(dot, 0));
  const secret = token.slice(dot + 1);
  if (dot <= 0 || secret.length === 0) throw new ApiError('unauthorized', 'invalid token');
  const secretHash = await hashSecret(secret);
  if (id.startsWith('a_')) {
    const row = await getAdminToken(database(c.env.DB), id);
    const check = verifyCredential(storedCredential(row && { ...row, taskId: '' }), '', secretHash, Date.now(), 'operator token');
    if (!check.ok) throw new ApiError(check.code, check.message);
    return { kind: 'admin', tokenId: id };
  }
  const taskId = c.req.param('taskId');
  if (taskId !== undefined) {
    // The Durable Object that serves this client checks it (and its request rate): one place for every isolate.
    const result = await (await serverOf(c.env, taskId, id)).authenticate(taskId, id, secretHash);
    if (!result.ok) throw new ApiError(result.code, result.message, result.code === 'rate_limited' ? { 'retry-after': String(result.retryAfterSeconds) } : {});
    return { kind: 'client', clientId: id, taskId };
  }
  // A route outside any task (operator only): read the row just to tell 403 from 401.
  const row = await getClientCredential(database(c.env.DB), id);
  const check = verifyCredential(storedCredential(row), row?.taskId ?? '', secretHash, Date.now());
  if (!check.ok) throw new ApiError(check.code, check.message);
  return { kind: 'client', clientId: id, taskId: row!.taskId };
}

async function countFailure(c: Context<AppEnv>, source: string): Promise<void> {
  const { success } = await c.env.AUTH_FAILURES.limit({ key: source });
  if (success) return;
  if (blockedSources.size >= MAX_BLOCKED_SOURCES) blockedSources.delete(blockedSources.keys().next().value!);
  const until = (Math.floor(Date.now() / AUTH_FAILURE_WINDOW_MS) + 1) * AUTH_FAILURE_WINDOW_MS;
  blockedSources.set(source, until);
  throw rateLimited(until - Date.now());
}

function rateLimited(ms: number): ApiError {
  return new ApiError('rate_limited', 'too many failed authentications from this source; retry later', {
    'retry-after': String(Math.max(1, Math.ceil(ms / 1000))),
  });
}

/** Operator routes: an operator token only. */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const caller = await identify(c);
  if (caller.kind !== 'admin') throw new ApiError('forbidden', 'this operation needs an operator token');
  c.set('caller', caller);
  await next();
});

/** Task routes: an operator token, or a client token of the task named in the path. */
export const requireTaskAccess = createMiddleware<AppEnv>(async (c, next) => {
  c.set('caller', await identify(c));
  await next();
});

/** Client-only routes (check-in, updates, evaluations): a client token of the task in the path. */
export const requireClient = createMiddleware<AppEnv>(async (c, next) => {
  const caller = await identify(c);
  if (caller.kind !== 'client') throw new ApiError('forbidden', 'this operation needs a client token');
  c.set('caller', caller);
  await next();
});

/**
 * Who may call a route: spread into its `createRoute` config, so the guard that runs and the
 * security the OpenAPI document declares are one choice (CORS reads the latter).
 */
export const access = {
  operator: { middleware: [requireAdmin] as [typeof requireAdmin], security: [{ operator: [] as string[] }] },
  client: { middleware: [requireClient] as [typeof requireClient], security: [{ client: [] as string[] }] },
  operatorOrClient: { middleware: [requireTaskAccess] as [typeof requireTaskAccess], security: [{ operator: [] as string[] }, { client: [] as string[] }] },
};

/** The calling client of a client-only route. */
export function clientOf(c: Context<AppEnv>): Extract<Caller, { kind: 'client' }> {
  const caller = c.get('caller');
  if (caller.kind !== 'client') throw new ApiError('forbidden', 'this operation needs a client token');
  return caller;
}

async function timingSafeEqualText(a: string, b: string): Promise<boolean> {
  // Compare digests so the comparison time does not depend on where the strings differ.
  const [x, y] = await Promise.all([sha256Hex(new TextEncoder().encode(a)), sha256Hex(new TextEncoder().encode(b))]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x.charCodeAt(i) ^ y.charCodeAt(i);
  return diff === 0;
}

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
