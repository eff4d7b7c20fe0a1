import { describe, expect, it, vi } from 'vitest';
import { AbortedError, APIConnectionError, APITimeoutError, FedgeError, InternalServerError, RateLimitError } from '../errors.ts';
import { backoff, Http, type HttpOptions, retryAfterMs } from './http.ts';

describe('retry timing', () => {
  it('backs off exponentially with jitter in [0.5, 1] of the cap, capped at 8 s', () => {
    expect([0, 1, 2, 3, 4, 5].map((a) => backoff(a, () => 1))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect([0, 1, 2].map((a) => backoff(a, () => 0))).toEqual([250, 500, 1000]);
  });

  it('reads Retry-After as seconds or an HTTP date, bounded to 60 s, and ignores garbage', () => {
    const h = (v: string) => new Headers({ 'retry-after': v });
    expect(retryAfterMs(h('3'))).toBe(3000);
    expect(retryAfterMs(h('0'))).toBe(0);
    expect(retryAfterMs(h('3600'))).toBe(60_000);
    const now = Date.parse('2026-11-25T10:00:00Z');
    expect(retryAfterMs(h('Wed, 25 Nov 2026 10:00:05 GMT'), now)).toBe(5000);
    expect(retryAfterMs(h('soon'))).toBeUndefined();
    expect(retryAfterMs(h('-4'))).toBeUndefined();
    expect(retryAfterMs(new Headers())).toBeUndefined();
  });
});

/** A scripted fetch: answers in order, records every call (URL, method, headers, body, signal). */
function scripted(...answers: (Response | Error | 'hang')[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(input), init: init ?? {} });
    const next = answers.shift();
    if (next === undefined) throw new Error(`unexpected call ${calls.length}`);
    if (next === 'hang')
      return new Promise<Response>((_r, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason), { once: true }));
    if (next instanceof Error) throw next;
    return next;
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

const errorBody = (code: string, status: number, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error: { code, message: `because ${code}` } }), { status, headers: { 'content-type': 'application/json', ...headers } });
const ok = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });

function http(fetch: typeof globalThis.fetch, over: Partial<HttpOptions> = {}) {
  const warnings: string[] = [];
  const client = new Http({
    baseUrl: 'https://fedge.test/v1/',
    token: 'c1.secret',
    fetch,
    timeoutMs: 1_000,
    maxRetries: 2,
    logger: { warn: (m) => warnings.push(m) },
    onTraffic: undefined,
    ...over,
  });
  return { client, warnings };
}

describe('the retry loop (injected fetch)', () => {
  it('retries 503 and 429 with Retry-After, then returns the answer; sends bearer auth and JSON', async () => {
    const s = scripted(errorBody('internal_error', 503, { 'retry-after': '0' }), errorBody('overloaded', 429, { 'retry-after': '0' }), ok({ n: 1 }));
    const { client, warnings } = http(s.fetch);
    expect(await client.json({ method: 'POST', path: '/tasks/t/checkin', json: { a: 1 }, retry: true })).toEqual({ n: 1 });
    expect(s.calls).toHaveLength(3);
    expect(s.calls[0]!.url).toBe('https://fedge.test/v1/tasks/t/checkin');
    const headers = s.calls[0]!.init.headers as Record<string, string>;
    expect(headers.authorization).toBe('Bearer c1.secret');
    expect(headers['content-type']).toBe('application/json');
    expect(s.calls[0]!.init.body).toBe('{"a":1}');
    expect(warnings).toEqual(['fedge: POST /tasks/t/checkin got 503; retry 1/2 in 0 ms', 'fedge: POST /tasks/t/checkin got 429; retry 2/2 in 0 ms']);
  });

  it('gives up after maxRetries and throws the last answer as a typed, coded error', async () => {
    const s = scripted(...[1, 2, 3].map(() => errorBody('overloaded', 429, { 'retry-after': '0' })));
    const err = await http(s.fetch)
      .client.json({ method: 'GET', path: '/x', retry: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err).toMatchObject({ status: 429, code: 'overloaded', message: '429 overloaded: because overloaded' });
    expect((err as RateLimitError).headers.get('retry-after')).toBe('0');
    expect(s.calls).toHaveLength(3);
  });

  it('never retries what is not safe to retry: 4xx answers, and any answer of a non-retry request', async () => {
    const conflict = scripted(errorBody('duplicate_conflict', 409));
    await expect(http(conflict.fetch).client.json({ method: 'PUT', path: '/u', retry: true })).rejects.toMatchObject({
      name: 'ConflictError',
      code: 'duplicate_conflict',
    });
    expect(conflict.calls).toHaveLength(1);
    const once = scripted(errorBody('internal_error', 503, { 'retry-after': '0' }));
    await expect(http(once.fetch).client.json({ method: 'POST', path: '/t', retry: false })).rejects.toBeInstanceOf(InternalServerError);
    expect(once.calls).toHaveLength(1);
  });

  it('retries network errors with backoff, then throws connection_failed with the cause', async () => {
    vi.useFakeTimers();
    try {
      const boom = new TypeError('fetch failed');
      const s = scripted(boom, boom, boom);
      const p = http(s.fetch, { maxRetries: 2 })
        .client.request({ method: 'GET', path: '/h', retry: true })
        .catch((e: unknown) => e);
      // Backoff: 250-500 ms before retry 1, 500-1000 ms before retry 2.
      await vi.advanceTimersByTimeAsync(249);
      expect(s.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(251);
      expect(s.calls).toHaveLength(2);
      await vi.advanceTimersByTimeAsync(1_000);
      const err = await p;
      expect(s.calls).toHaveLength(3);
      expect(err).toBeInstanceOf(APIConnectionError);
      expect(err).toMatchObject({ code: 'connection_failed', cause: boom });
    } finally {
      vi.useRealTimers();
    }
  });

  it('waits as long as Retry-After says (seconds), not its own backoff', async () => {
    vi.useFakeTimers();
    try {
      const s = scripted(errorBody('rate_limited', 429, { 'retry-after': '3' }), ok({ done: true }));
      const p = http(s.fetch).client.json({ method: 'GET', path: '/r', retry: true });
      await vi.advanceTimersByTimeAsync(2_999);
      expect(s.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(await p).toEqual({ done: true });
      expect(s.calls).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('times out a hung request with code timeout, and retries it when allowed', async () => {
    const s = scripted('hang', ok({ second: true }));
    const { client } = http(s.fetch, { timeoutMs: 50, maxRetries: 1 });
    const t0 = Date.now();
    expect(await client.json({ method: 'GET', path: '/slow', retry: true })).toEqual({ second: true });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    const hung = scripted('hang');
    const err = await http(hung.fetch, { timeoutMs: 50, maxRetries: 0 })
      .client.json({ method: 'GET', path: '/slow', retry: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APITimeoutError);
    expect(err).toMatchObject({ code: 'timeout', message: 'GET /slow timed out after 50 ms' });
  });

  it("stops at once when the caller aborts, mid-request or mid-backoff, with code aborted and the signal's reason", async () => {
    const hung = scripted('hang');
    const ac = new AbortController();
    const p = http(hung.fetch).client.json({ method: 'GET', path: '/a', retry: true, signal: ac.signal });
    ac.abort(new Error('user left the page'));
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortedError);
    expect(err).toMatchObject({ code: 'aborted', cause: new Error('user left the page') });
    expect(hung.calls).toHaveLength(1);

    const busy = scripted(errorBody('overloaded', 429, { 'retry-after': '30' }));
    const ac2 = new AbortController();
    const p2 = http(busy.fetch).client.json({ method: 'GET', path: '/b', retry: true, signal: ac2.signal });
    setTimeout(() => ac2.abort(), 20);
    const t0 = Date.now();
    await expect(p2).rejects.toMatchObject({ name: 'AbortedError', code: 'aborted' });
    expect(Date.now() - t0).toBeLessThan(5_000); // did not sit out the 30 s Retry-After
    expect(busy.calls).toHaveLength(1);
  });

  it('maps error bodies that are not fedge errors to unknown_error, and a non-JSON success to invalid_response', async () => {
    const proxy = scripted(new Response('<html>Bad gateway</html>', { status: 502 }));
    await expect(http(proxy.fetch).client.json({ method: 'GET', path: '/p', retry: false })).rejects.toMatchObject({
      name: 'InternalServerError',
      status: 502,
      code: 'unknown_error',
    });
    const garbled = scripted(new Response('not json', { status: 200 }));
    const err = await http(garbled.fetch)
      .client.json({ method: 'GET', path: '/g', retry: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedgeError);
    expect(err).toMatchObject({ code: 'invalid_response' });
  });
});
