/**
 * @module Bearer-token authentication: the operator's admin token and per-client tokens.
 *
 * A client token is `<clientId>.<secret>`; D1 keeps only SHA-256(secret). The admin token is the
 * `ADMIN_TOKEN` secret (locally, `.dev.vars`, written by `npm start` on first start).
 */
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { database, getClientAuth } from '../db/store.ts';
import { sha256Hex } from '../storage/weights.ts';
import { ApiError } from './errors.ts';

export type Caller = { kind: 'admin' } | { kind: 'client'; clientId: string; taskId: string };

export type AppEnv = { Bindings: Env; Variables: { caller: Caller } };

/** Makes a new client token and the hash to store for it. */
export async function newClientToken(clientId: string): Promise<{ token: string; tokenHash: string }> {
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { token: `${clientId}.${secret}`, tokenHash: await sha256Hex(new TextEncoder().encode(secret)) };
}

/**
 * Client tokens verified in this isolate recently: a client makes several calls a round, and each
 * would otherwise cost a D1 read and a hash. Tokens are never revoked today; when they can be, this
 * TTL bounds how long a revoked token keeps working in an isolate.
 */
const verifiedClients = new Map<string, { caller: Extract<Caller, { kind: 'client' }>; until: number }>();
const CLIENT_CACHE_MS = 60_000;
const MAX_CACHED_CLIENTS = 10_000;

async function identify(c: Context<AppEnv>): Promise<Caller> {
  const header = c.req.header('authorization');
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  if (!match) throw new ApiError('unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
  const token = match[1]!;
  const admin = c.env.ADMIN_TOKEN;
  if (admin && (await timingSafeEqualText(token, admin))) return { kind: 'admin' };
  const cached = verifiedClients.get(token);
  if (cached && cached.until > Date.now()) return cached.caller;
  const dot = token.indexOf('.');
  if (dot > 0) {
    const clientId = token.slice(0, dot);
    const row = await getClientAuth(database(c.env.DB), clientId);
    if (row && (await sha256Hex(new TextEncoder().encode(token.slice(dot + 1)))) === row.tokenHash) {
      const caller = { kind: 'client', clientId, taskId: row.taskId } as const;
      if (verifiedClients.size >= MAX_CACHED_CLIENTS) verifiedClients.delete(verifiedClients.keys().next().value!);
      verifiedClients.set(token, { caller, until: Date.now() + CLIENT_CACHE_MS });
      return caller;
    }
  }
  throw new ApiError('forbidden', 'invalid token');
}

/** Operator routes: the admin token only. */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const caller = await identify(c);
  if (caller.kind !== 'admin') throw new ApiError('forbidden', 'this operation needs the admin token');
  c.set('caller', caller);
  await next();
});

/** Task routes: the admin token, or a client token of the task named in the path. */
export const requireTaskAccess = createMiddleware<AppEnv>(async (c, next) => {
  const caller = await identify(c);
  if (caller.kind === 'client' && caller.taskId !== c.req.param('taskId')) throw new ApiError('forbidden', 'this client token belongs to another task');
  c.set('caller', caller);
  await next();
});

/** Client-only routes (check-in, updates): a client token of the task in the path. */
export const requireClient = createMiddleware<AppEnv>(async (c, next) => {
  const caller = await identify(c);
  if (caller.kind !== 'client') throw new ApiError('forbidden', 'this operation needs a client token');
  if (caller.taskId !== c.req.param('taskId')) throw new ApiError('forbidden', 'this client token belongs to another task');
  c.set('caller', caller);
  await next();
});

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
