/**
 * @module Typed errors of the fedge client SDK. Every error the SDK throws is a {@link FedgeError}
 * with a stable `code`: the server's (protocol/codes.ts `ERROR_STATUS`) when it answered with an
 * error, or one of `CLIENT_ERROR_CODES` when the SDK found the failure itself. The class tells
 * what kind of failure it is; the code tells exactly which.
 */
import { type ErrorCode, isErrorCode } from './protocol/codes.ts';
import { FedgeError } from './protocol/errors.ts';

export { WireFormatError } from './protocol/safetensors.ts';
export { FedgeError };

/**
 * The server answered with an error status: `status`, the server's stable `code` and the
 * response `headers`. Subclasses tell the kind of failure.
 *
 * @example
 * try {
 *   await client.submitUpdate(args);
 * } catch (e) {
 *   if (e instanceof APIError) console.error(e.status, e.code, e.headers.get('retry-after'));
 *   throw e;
 * }
 */
export class APIError extends FedgeError {
  override readonly name: string = 'APIError';
  readonly status: number;
  /** The server's stable error code, or `unknown_error` when the body was not a fedge error. */
  declare readonly code: ErrorCode | 'unknown_error';
  readonly headers: Headers;
  constructor(status: number, code: ErrorCode | 'unknown_error', message: string, headers: Headers) {
    super(code, `${status} ${code}: ${message}`);
    this.status = status;
    this.headers = headers;
  }

  /** Builds the subclass that matches the status (and, for 409, the code). */
  static from(status: number, body: unknown, headers: Headers): APIError {
    const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const code = isErrorCode(err?.code) ? err.code : 'unknown_error';
    const message = typeof err?.message === 'string' ? err.message : `HTTP ${status}`;
    const Cls = classFor(status, code);
    return new Cls(status, code, message, headers);
  }
}

/**
 * 400, 413, 422: the request was refused as invalid (bad update, bad metadata, too large).
 *
 * @example
 * try {
 *   await client.submitUpdate(args);
 * } catch (e) {
 *   if (e instanceof ValidationError && e.code === 'non_finite') console.error('training diverged: NaN in the update');
 *   else throw e;
 * }
 */
export class ValidationError extends APIError {
  override readonly name: string = 'ValidationError';
}
/**
 * 401: no valid token (none, not one this service issued, expired or revoked: `code` says which).
 *
 * @example
 * try {
 *   await client.participate({ xs, ys });
 * } catch (e) {
 *   if (e instanceof AuthenticationError && e.code === 'token_expired') await reEnroll();
 *   else throw e;
 * }
 */
export class AuthenticationError extends APIError {
  override readonly name: string = 'AuthenticationError';
}
/**
 * 403: a token that is not valid for this resource (`forbidden`), or an evaluation before taking part (`not_participant`).
 *
 * @example
 * try {
 *   await client.evaluate('current', { xs: testXs, ys: testYs });
 * } catch (e) {
 *   if (!(e instanceof PermissionDeniedError && e.code === 'not_participant')) throw e; // report after taking part
 * }
 */
export class PermissionDeniedError extends APIError {
  override readonly name: string = 'PermissionDeniedError';
}
/**
 * 404: unknown task, round, version or route.
 *
 * @example
 * const manifest = await client.getManifest(7).catch((e) => {
 *   if (e instanceof NotFoundError && e.code === 'version_not_found') return null; // not published yet
 *   throw e;
 * });
 */
export class NotFoundError extends APIError {
  override readonly name: string = 'NotFoundError';
}
/**
 * 409: a conflict (different body for an accepted update, not assigned, wrong base version).
 *
 * @example
 * try {
 *   await client.submitUpdate(args);
 * } catch (e) {
 *   if (e instanceof ConflictError && e.code === 'not_assigned') await client.waitForAssignment(); // check in first
 *   else throw e;
 * }
 */
export class ConflictError extends APIError {
  override readonly name: string = 'ConflictError';
}
/**
 * 409 `round_closed` (or `stale_update` in asynchronous tasks, `secagg_wrong_round` under secure aggregation): the update arrived too late; check in again.
 *
 * @example
 * try {
 *   await client.submitUpdate(args);
 * } catch (e) {
 *   if (e instanceof LateUpdateError) await client.waitForAssignment(); // the next round
 *   else throw e;
 * }
 */
export class LateUpdateError extends ConflictError {
  override readonly name: string = 'LateUpdateError';
}
/**
 * 409 `round_abandoned`: the round ended at its deadline below its minimum and its updates were
 * discarded (also the answer to a retry of an update it had accepted). Check in again.
 *
 * @example
 * try {
 *   await client.submitUpdate(args);
 * } catch (e) {
 *   if (e instanceof RoundAbandonedError) console.log('round abandoned: the update was discarded');
 *   else throw e;
 * }
 */
export class RoundAbandonedError extends LateUpdateError {
  override readonly name: string = 'RoundAbandonedError';
}
/**
 * 429: the server is busy; retried automatically, thrown when retries run out.
 *
 * @example
 * try {
 *   await client.participate({ xs, ys });
 * } catch (e) {
 *   if (e instanceof RateLimitError) scheduleRetry(Number(e.headers.get('retry-after') ?? 60));
 *   else throw e;
 * }
 */
export class RateLimitError extends APIError {
  override readonly name: string = 'RateLimitError';
}
/**
 * 5xx: an error on the server's side; retried automatically, thrown when retries run out.
 *
 * @example
 * try {
 *   await client.participate({ xs, ys });
 * } catch (e) {
 *   if (e instanceof InternalServerError) console.error(`server error ${e.status}: try again later`);
 *   else throw e;
 * }
 */
export class InternalServerError extends APIError {
  override readonly name: string = 'InternalServerError';
}

/**
 * `connection_failed`: the request never got an HTTP answer (DNS, refused, reset); `cause` holds the platform's error.
 *
 * @example
 * try {
 *   await client.participate({ xs, ys });
 * } catch (e) {
 *   if (e instanceof APIConnectionError) showOffline(); // also catches APITimeoutError
 *   else throw e;
 * }
 */
export class APIConnectionError extends FedgeError {
  override readonly name: string = 'APIConnectionError';
  declare readonly code: 'connection_failed' | 'timeout';
  constructor(message: string, options?: ErrorOptions, code: 'connection_failed' | 'timeout' = 'connection_failed') {
    super(code, message, options);
  }
}

/**
 * `timeout`: no answer within the client's `timeoutMs`.
 *
 * @example
 * const client = new FedgeClient({ baseUrl, taskId, token, timeoutMs: 120_000 }); // per attempt
 * try {
 *   await client.participate({ xs, ys });
 * } catch (e) {
 *   if (e instanceof APITimeoutError) console.warn('no answer within 120 s, even after retries');
 *   else throw e;
 * }
 */
export class APITimeoutError extends APIConnectionError {
  override readonly name: string = 'APITimeoutError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options, 'timeout');
  }
}

/**
 * `aborted`: the caller's `AbortSignal` fired; `cause` is the signal's reason.
 *
 * @example
 * const controller = new AbortController(); // a Cancel button calls controller.abort()
 * try {
 *   await client.participate({ xs, ys }, { signal: controller.signal });
 * } catch (e) {
 *   if (!(e instanceof AbortedError)) throw e;
 * }
 */
export class AbortedError extends FedgeError {
  override readonly name: string = 'AbortedError';
  declare readonly code: 'aborted';
  constructor(message: string, signal: AbortSignal) {
    super('aborted', message, { cause: signal.reason });
  }
}

/**
 * `model_mismatch`: the model does not fit the task (its topology cannot be built, or shapes or tensor count differ).
 *
 * @example
 * try {
 *   setFlatWeights(myModel, manifest.tensors, flat);
 * } catch (e) {
 *   if (e instanceof ModelMismatchError) console.error(`not the task's architecture: ${e.message}`);
 *   else throw e;
 * }
 */
export class ModelMismatchError extends FedgeError {
  override readonly name: string = 'ModelMismatchError';
  declare readonly code: 'model_mismatch';
  constructor(message: string, options?: ErrorOptions) {
    super('model_mismatch', message, options);
  }
}

type APIErrorClass = new (status: number, code: ErrorCode | 'unknown_error', message: string, headers: Headers) => APIError;

function classFor(status: number, code: ErrorCode | 'unknown_error'): APIErrorClass {
  if (status === 401) return AuthenticationError;
  if (status === 403) return PermissionDeniedError;
  if (status === 404) return NotFoundError;
  if (status === 409 && code === 'round_abandoned') return RoundAbandonedError;
  if (status === 409) return code === 'round_closed' || code === 'stale_update' || code === 'secagg_wrong_round' ? LateUpdateError : ConflictError;
  if (status === 429) return RateLimitError;
  if (status >= 500) return InternalServerError;
  if (status === 400 || status === 413 || status === 422) return ValidationError;
  return APIError;
}
