/**
 * @module The SDK's one HTTP path: bearer auth, timeout, JSON errors into typed errors, and retries
 * of what is safe (network errors, 408, 429, 5xx) with exponential backoff, jitter and Retry-After.
 * Internal: not part of the public API.
 */
import { AbortedError, APIConnectionError, APIError, APITimeoutError, FedgeError } from '../errors.ts';

/**
 * Where the SDK reports what it does: `debug` for each request, `warn` for each retry. Both optional.
 *
 * @example
 * const client = new FedgeClient({ baseUrl, taskId, token, logger: console });
 * const quiet = new FedgeClient({ baseUrl, taskId, token, logger: { warn: (message) => myLog.warn(message) } });
 */
export interface Logger {
  debug?(message: string, data?: Record<string, unknown>): void;
  warn?(message: string, data?: Record<string, unknown>): void;
}

export interface HttpOptions {
  baseUrl: string;
  token: string;
  fetch: typeof fetch;
  timeoutMs: number;
  maxRetries: number;
  logger: Logger | undefined;
  /** Called with the byte size of every request and response body (for "bytes moved" reports). */
  onTraffic: ((sent: number, received: number) => void) | undefined;
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  json?: unknown;
  body?: Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  /** Retry this request on 408/429/5xx/network errors. PUT of an update is safe: it is idempotent. */
  retry: boolean;
  signal?: AbortSignal | undefined;
}

const INITIAL_DELAY_MS = 500;
const MAX_DELAY_MS = 8_000;
/** Longest Retry-After the SDK honours inside one call; longer waits are left to the caller. */
const MAX_RETRY_AFTER_MS = 60_000;

export class Http {
  readonly options: HttpOptions;
  constructor(options: HttpOptions) {
    this.options = options;
  }

  /** Sends the request; returns the successful response (body unread) or throws a typed error. */
  async request(spec: RequestSpec): Promise<Response> {
    const { maxRetries, logger } = this.options;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.once(spec);
      } catch (e) {
        if (!spec.retry || attempt >= maxRetries || spec.signal?.aborted) throw e;
        const wait = backoff(attempt);
        logger?.warn?.(`fedge: ${spec.method} ${spec.path} failed (${(e as Error).message}); retry ${attempt + 1}/${maxRetries} in ${wait} ms`);
        await sleep(wait, spec.signal);
        continue;
      }
      if (res.ok || res.status === 304) return res;
      const retriable = res.status === 408 || res.status === 429 || res.status >= 500;
      if (!spec.retry || !retriable || attempt >= maxRetries) throw await toError(res);
      const wait = retryAfterMs(res.headers) ?? backoff(attempt);
      await res.body?.cancel();
      logger?.warn?.(`fedge: ${spec.method} ${spec.path} got ${res.status}; retry ${attempt + 1}/${maxRetries} in ${wait} ms`);
      await sleep(wait, spec.signal);
    }
  }

  async json<T>(spec: RequestSpec): Promise<T> {
    const res = await this.request(spec);
    const text = await res.text();
    this.options.onTraffic?.(0, text.length);
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new FedgeError('invalid_response', `${spec.method} ${spec.path}: ${res.status} answer is not JSON (${text.slice(0, 80)})`, { cause: e });
    }
  }

  private async once(spec: RequestSpec): Promise<Response> {
    const { baseUrl, token, timeoutMs, onTraffic } = this.options;
    const timeout = timeoutSignal(timeoutMs);
    const signal = spec.signal ? anySignal(spec.signal, timeout) : timeout;
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...spec.headers };
    let body: BodyInit | undefined;
    if (spec.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(spec.json);
    } else if (spec.body) {
      headers['content-type'] = 'application/octet-stream';
      body = spec.body;
    }
    onTraffic?.(typeof body === 'string' ? body.length : (spec.body?.byteLength ?? 0), 0);
    this.options.logger?.debug?.(`fedge: ${spec.method} ${spec.path}`);
    try {
      return await this.options.fetch(`${baseUrl.replace(/\/+$/, '')}${spec.path}`, { method: spec.method, headers, body: body ?? null, signal });
    } catch (e) {
      if (timeout.aborted) throw new APITimeoutError(`${spec.method} ${spec.path} timed out after ${timeoutMs} ms`, { cause: e });
      if (spec.signal?.aborted) throw new AbortedError(`${spec.method} ${spec.path} aborted`, spec.signal);
      throw new APIConnectionError(`${spec.method} ${spec.path}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/**
 * A signal that fires after `ms` (it also bounds reading the body, as `AbortSignal.timeout` does).
 * `AbortSignal.timeout` where the platform has it; React Native's AbortSignal has no `timeout`
 * (nor `any`), so a timer there.
 */
function timeoutSignal(ms: number): AbortSignal {
  if (typeof AbortSignal.timeout === 'function') return AbortSignal.timeout(ms);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new FedgeError('timeout', `timed out after ${ms} ms`)), ms);
  return controller.signal;
}

/** A signal that fires when either does (`AbortSignal.any` where the platform has it). */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const controller = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

async function toError(res: Response): Promise<APIError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  return APIError.from(res.status, body, res.headers);
}

/** Exponential backoff with full jitter: uniform in [0.5, 1] × min(max, initial × 2^attempt). */
export function backoff(attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(MAX_DELAY_MS, INITIAL_DELAY_MS * 2 ** attempt);
  return Math.round(cap * (0.5 + random() / 2));
}

/** Retry-After in seconds or as an HTTP date, in ms (bounded); undefined when absent or invalid. */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | undefined {
  const raw = headers.get('retry-after');
  if (raw === null) return undefined;
  const seconds = Number(raw);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(raw) - now;
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : undefined;
}

/** Waits `ms`; rejects with {@link AbortedError} as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError('aborted while waiting', signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError('aborted while waiting', signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
