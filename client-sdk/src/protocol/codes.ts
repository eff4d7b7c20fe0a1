/**
 * @module Stable error codes of the fedge HTTP API, shared by the aggregator and the client SDK.
 *
 * A code never changes meaning once published; the HTTP status is the one the server sends with it.
 * Error bodies are always `{ "error": { "code": ErrorCode, "message": string } }`.
 */

/**
 * Every error code the server sends, with the HTTP status it sends it with.
 *
 * @example
 * ERROR_STATUS.round_closed; // 409
 */
export const ERROR_STATUS = {
  /** Body is not JSON, or JSON that does not match the route's schema. */
  invalid_request: 400,
  /** The task's strategy is unknown, or one of its parameters is out of range. */
  invalid_strategy: 400,
  /** The task's privacy configuration is unknown, out of range, or does not fit its rounds or budget (the message says why). */
  invalid_privacy: 400,
  /** Task creation: secure aggregation does not fit the strategy, the privacy setting or the round rules, or n · clipRange leaves too few bits below the modulus (the message says why). */
  invalid_secure_aggregation: 400,
  /** Task creation: `shards` is out of range, or more than 1 for a task that needs one object (a strategy that reads every update, FedBuff, secure aggregation); or a model split into parameter ranges with something that needs each whole update in one place (norm bounding, FedBuff, DP, secure aggregation); the message says why. */
  invalid_sharding: 400,
  /** A secure-aggregation message (keys, shares, masked input, reveal) that is malformed: bad base64, a key of the wrong length, shares for clients that are not the sender's neighbours, a masked input of the wrong size. */
  invalid_secagg_message: 400,
  /** The request body of a JSON route is not parseable JSON. */
  malformed_json: 400,
  /** Task creation: `modelTopology` is not a TensorFlow.js Layers model a client can build (the message says where). */
  invalid_topology: 400,
  /** Task creation: `initialWeights` cannot be decoded, holds no parameters, or has a tensor name outside the allowed form. */
  invalid_weights: 400,
  /** Task creation: `initialWeights` and the weights the topology builds differ (the message names the first difference). */
  weights_mismatch: 400,
  /** No valid token: none was sent, or it is not one this service issued (`WWW-Authenticate` says which). */
  unauthorized: 401,
  /** The token's lifetime ended (`expiresInSeconds`): rotate it, or ask the operator for a new one. */
  token_expired: 401,
  /** The token was revoked (its client, or the operator token), or the ADMIN_TOKEN value retired; a token replaced by a rotation is unknown: `unauthorized`. */
  token_revoked: 401,
  /** Self-enrollment: the enrollment key is unknown, malformed, or belongs to another task. */
  enrollment_key_invalid: 401,
  /** Self-enrollment: the operator revoked this enrollment key (clients it enrolled keep working). */
  enrollment_key_revoked: 401,
  /** Self-enrollment: the enrollment key's lifetime ended. */
  enrollment_key_expired: 401,
  /** Enrollment by ID token: not a JWT, a claim that fails (other than those below), or an algorithm not allowed. */
  id_token_invalid: 401,
  /** Enrollment by ID token: an unsigned token (`alg: none`). */
  id_token_unsigned: 401,
  /** Enrollment by ID token: the token expired (sign in again). */
  id_token_expired: 401,
  /** Enrollment by ID token: its issuer is not one the task trusts. */
  id_token_wrong_issuer: 401,
  /** Enrollment by ID token: its audience is not the app the task trusts. */
  id_token_wrong_audience: 401,
  /** Enrollment by ID token: its signature does not verify with the issuer's published keys (JWKS). */
  id_token_bad_signature: 401,
  /** A valid token that may not do this (a client on an operator route, another task's client, the admin checking in). */
  forbidden: 403,
  /** A secure-aggregation message from a client that is not in the phase's set: not assigned, no keys advertised, no shares sent, or no masked input sent in this round. */
  secagg_unknown_client: 403,
  /** Federated evaluation from a client that has not taken part in the task (no accepted update, no assignment in the live round). */
  not_participant: 403,
  /** No route matches the path. */
  not_found: 404,
  task_not_found: 404,
  client_not_found: 404,
  round_not_found: 404,
  version_not_found: 404,
  /** The client was not assigned to this round (check in first). */
  not_assigned: 409,
  /** The round already closed or was abandoned: a late update. */
  round_closed: 409,
  /** The round was abandoned at its deadline below its minimum: the update was discarded (also answers a retry of an update it had accepted). */
  round_abandoned: 409,
  /** The update was trained on another base version than the round's. */
  base_version_mismatch: 409,
  /** Asynchronous tasks: the update's base version is older than the task's staleness bound. */
  stale_update: 409,
  /** The operator stopped the task: it assigns no new clients and opens no new rounds (check-in, pause, resume). */
  task_stopped: 409,
  /** Deleting a task that is not stopped, or whose last round is still running: stop it, and let the round end. */
  task_not_stopped: 409,
  /** The task's privacy budget allows no further round: the task finished (its versions stay readable). */
  privacy_budget_exhausted: 409,
  /** The client is revoked: its token cannot be rotated (register a new client). */
  client_revoked: 409,
  /** Self-enrollment: the key enrolled its `maxClients` devices, or the task holds its `maxClients` clients. */
  enrollment_limit_reached: 409,
  /** A plaintext update (`PUT …/update`) on a task that runs secure aggregation: only masked inputs are taken. */
  secure_aggregation_required: 409,
  /** A whole update (`PUT …/update`) on a task whose model is split into parameter ranges: send it in chunks (`PUT …/update/chunks/{k}`), then commit it (`POST …/update/commit`). */
  chunked_upload_required: 409,
  /** The commit of a chunked update names chunks that were not received (the message lists them): send them, then commit again. */
  update_incomplete: 409,
  /** A secure-aggregation message on a task that does not run secure aggregation. */
  secagg_not_enabled: 409,
  /** A secure-aggregation message for a round that is not the live one (over, or not begun). */
  secagg_wrong_round: 409,
  /** A secure-aggregation message for a phase the round is not in (keys after the advertise phase ended, a masked input before the shares went out, …). */
  secagg_out_of_phase: 409,
  /** A second, different secure-aggregation message of this client for the same phase of the round (a retry of the same message is accepted again). */
  secagg_conflict: 409,
  /** An update for (task, round, client) was already accepted with a different body. */
  duplicate_conflict: 409,
  /** The update body stalled, or arrived slower than the minimum rate: it was cut off (retry). */
  upload_timeout: 408,
  /** The body is larger than the cap derived from the task's model size. */
  payload_too_large: 413,
  /** A download's `Range` starts at or past the end of the blob (the answer's `Content-Range` header gives its size). */
  range_not_satisfiable: 416,
  /** The body is not a well-formed fedge/safetensors message (truncated, corrupt header, bad offsets). */
  malformed_update: 400,
  /** Tensor names, shapes or dtypes differ from the task's model. */
  tensor_mismatch: 422,
  /** NaN or Infinity in a tensor. */
  non_finite: 422,
  /** The declared example count is missing, not a positive integer, or above the task's cap. */
  invalid_example_count: 422,
  /** A task that clips on the client (privacy.clipping = client): the update's L2 norm is above the round's clip norm. */
  update_norm_exceeded: 422,
  /** Required metadata is missing or malformed (base version, metrics). */
  invalid_metadata: 422,
  /** An update body that is not `application/octet-stream`. */
  unsupported_media_type: 415,
  /** Too much work in flight: retry after the `retry-after` header. */
  overloaded: 429,
  /** Another upload from this client is still being received: one at a time (retry after `retry-after`). */
  upload_in_progress: 429,
  /** Too many requests from this client, or too many failed authentications from this source: retry after `retry-after`. */
  rate_limited: 429,
  /** Unexpected server error (logged). */
  internal_error: 500,
  /** Enrollment by ID token: the issuer's keys (JWKS) could not be fetched; retry later. */
  identity_provider_unavailable: 502,
} as const;

/**
 * A stable error code of the server (a key of {@link ERROR_STATUS}): the `code` of an `APIError`.
 *
 * @example
 * const isAuthFailure = (code: ErrorCode) => ERROR_STATUS[code] === 401;
 */
export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * The JSON body of every error response.
 *
 * @example
 * const res = await fetch(`${baseUrl}/v1/tasks/${taskId}`, { headers: { authorization: `Bearer ${token}` } });
 * if (!res.ok) console.error(((await res.json()) as ErrorBody).error.code);
 */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}

/**
 * Codes of the failures the SDK finds on its own side, without an error answer from the server.
 * Like the server's codes, they never change meaning once published. Every error the SDK throws
 * is a `FedgeError` whose `code` is one of {@link ErrorCode} or these. Each value says what its code means.
 *
 * @example
 * if (e instanceof FedgeError && e.code in CLIENT_ERROR_CODES) console.error('failed on the device:', e.message);
 */
export const CLIENT_ERROR_CODES = {
  invalid_options: 'A constructor or method got options it cannot work with (the message names the option).',
  connection_failed: 'The request got no HTTP answer (DNS, refused, reset, offline).',
  timeout: "No answer within the client's `timeoutMs`.",
  aborted: "The caller's `AbortSignal` fired; its reason is the error's `cause`.",
  no_assignment: '`waitForAssignment` reached `maxWaitMs` without an assignment.',
  invalid_response: 'A success answer whose body is not what the API documents (not JSON, for example).',
  content_hash_mismatch: "Downloaded weights do not match their manifest's SHA-256 (corrupted in transit or by a cache).",
  model_mismatch: "The model does not fit the task: its topology cannot be built, or its weights' names, shapes or count differ from the task's tensors.",
  unsupported_model:
    'A model fedge cannot train: a GraphModel, quantized or non-float32 weights, several losses, an optimizer other than SGD or Adam (the message says which).',
  missing_platform_api: 'A platform API the SDK needs is missing (for example `crypto.subtle`); the message names it and the polyfill.',
  unknown_error: "The server answered with an error body that is not a fedge error (a proxy's page, for example).",
} as const;

/**
 * A code of a failure the SDK found itself (a key of {@link CLIENT_ERROR_CODES}).
 *
 * @example
 * const isClientSide = (code: FedgeErrorCode): code is ClientErrorCode => code in CLIENT_ERROR_CODES;
 */
export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES;

/**
 * The `code` of any error the SDK throws: the server's, or one the SDK found itself.
 *
 * @example
 * const messages: Partial<Record<FedgeErrorCode, string>> = { token_revoked: 'This device was signed out.', connection_failed: 'You are offline.' };
 * if (e instanceof FedgeError) showError(messages[e.code] ?? e.message);
 */
export type FedgeErrorCode = ErrorCode | ClientErrorCode;
