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

/** The server answered with an error status. */
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

/** 400, 413, 422: the request was refused as invalid (bad update, bad metadata, too large). */
export class ValidationError extends APIError {
  override readonly name: string = 'ValidationError';
}
/** 401: no token. */
export class AuthenticationError extends APIError {
  override readonly name: string = 'AuthenticationError';
}
/** 403: a token that is not valid for this resource. */
export class PermissionDeniedError extends APIError {
  override readonly name: string = 'PermissionDeniedError';
}
/** 404: unknown task, round, version or route. */
export class NotFoundError extends APIError {
  override readonly name: string = 'NotFoundError';
}
/** 409: a conflict (different body for an accepted update, not assigned, wrong base version). */
export class ConflictError extends APIError {
  override readonly name: string = 'ConflictError';
}
/** 409 `round_closed` (or `stale_update` in asynchronous tasks): the update arrived too late; check in again. */
export class LateUpdateError extends ConflictError {
  override readonly name: string = 'LateUpdateError';
}
/**
 * 409 `round_abandoned`: the round ended at its deadline below its minimum and its updates were
 * discarded (also the answer to a retry of an update it had accepted). Check in again.
 */
export class RoundAbandonedError extends LateUpdateError {
  override readonly name: string = 'RoundAbandonedError';
}
/** 429: the server is busy; retried automatically, thrown when retries run out. */
export class RateLimitError extends APIError {
  override readonly name: string = 'RateLimitError';
}
/** 5xx. */
export class InternalServerError extends APIError {
  override readonly name: string = 'InternalServerError';
}

/** `connection_failed`: the request never got an HTTP answer (DNS, refused, reset); `cause` holds the platform's error. */
export class APIConnectionError extends FedgeError {
  override readonly name: string = 'APIConnectionError';
  declare readonly code: 'connection_failed' | 'timeout';
  constructor(message: string, options?: ErrorOptions, code: 'connection_failed' | 'timeout' = 'connection_failed') {
    super(code, message, options);
  }
}

/** `timeout`: no answer within the client's `timeoutMs`. */
export class APITimeoutError extends APIConnectionError {
  override readonly name: string = 'APITimeoutError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options, 'timeout');
  }
}

/** `aborted`: the caller's `AbortSignal` fired; `cause` is the signal's reason. */
export class AbortedError extends FedgeError {
  override readonly name: string = 'AbortedError';
  declare readonly code: 'aborted';
  constructor(message: string, signal: AbortSignal) {
    super('aborted', message, { cause: signal.reason });
  }
}

/** `model_mismatch`: the model does not fit the task (its topology cannot be built, or shapes or tensor count differ). */
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
  if (status === 409) return code === 'round_closed' || code === 'stale_update' ? LateUpdateError : ConflictError;
  if (status === 429) return RateLimitError;
  if (status >= 500) return InternalServerError;
  if (status === 400 || status === 413 || status === 422) return ValidationError;
  return APIError;
}
