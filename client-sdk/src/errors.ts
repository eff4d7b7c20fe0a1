/**
 * @module Typed errors of the fedge client SDK. Every server error carries the same stable `code`
 * the server sent (see protocol/codes.ts); the class tells what kind of failure it is.
 */
import { type ErrorCode, isErrorCode } from './protocol/codes.ts';

/** Base class of every error the SDK throws. */
export class FedgeError extends Error {
  override readonly name: string = 'FedgeError';
}

/** The server answered with an error status. */
export class APIError extends FedgeError {
  override readonly name: string = 'APIError';
  readonly status: number;
  /** The server's stable error code, or `unknown_error` when the body was not a fedge error. */
  readonly code: ErrorCode | 'unknown_error';
  readonly headers: Headers;
  constructor(status: number, code: ErrorCode | 'unknown_error', message: string, headers: Headers) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
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

/** The request never got an HTTP answer (DNS, refused, reset). */
export class APIConnectionError extends FedgeError {
  override readonly name: string = 'APIConnectionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** No answer within the client's timeout. */
export class APITimeoutError extends APIConnectionError {
  override readonly name: string = 'APITimeoutError';
}

/** The downloaded model does not fit the task (shapes or tensor count differ from its topology). */
export class ModelMismatchError extends FedgeError {
  override readonly name: string = 'ModelMismatchError';
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
