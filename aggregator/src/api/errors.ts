/**
 * @module The one error type of the edge API and the handler that turns errors into JSON.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ERROR_STATUS, type ErrorBody, type ErrorCode } from '#protocol/codes.ts';

/**
 * A failure with a stable code; its HTTP status comes from the code.
 *
 * @example
 * throw new ApiError('task_not_found', `no task ${id}`);
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ErrorCode;
  readonly headers: Record<string, string>;
  constructor(code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.headers = headers;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export function errorResponse(code: ErrorCode, message: string, headers: Record<string, string> = {}): Response {
  const body: ErrorBody = { error: { code, message } };
  const status = ERROR_STATUS[code];
  // RFC 6750: a 401 names the scheme and, unless the token was missing (which says so itself), that the token was the problem.
  const challenge: Record<string, string> =
    status === 401 ? { 'www-authenticate': `Bearer realm="fedge", error="invalid_token", error_description="${code}"` } : {};
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...challenge, ...headers } });
}

/** `app.onError`: known errors keep their code; anything else is logged and becomes a 500. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return errorResponse(err.code, err.message, err.headers);
  if (err instanceof HTTPException) {
    // Hono's validators raise this for unparseable JSON bodies.
    if (err.status === 400 && /json/i.test(err.message)) return errorResponse('malformed_json', 'request body is not valid JSON');
    return errorResponse(err.status === 401 ? 'unauthorized' : 'invalid_request', err.message);
  }
  console.error(`${c.req.method} ${c.req.path} failed:`, err);
  return errorResponse('internal_error', 'internal error');
}
