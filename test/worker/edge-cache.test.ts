/**
 * Version downloads through the edge's cache (the Workers Cache API in workerd): the first read
 * of a version comes from R2 and is cached, the next ones are cache hits that do not touch R2 (the
 * R2 object is deleted in between to show it), and authentication still runs first.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { weightsKey } from '../../aggregator/src/storage/weights.ts';
import { ADMIN, api, createTask, registerClient } from './helpers.ts';

async function download(path: string, auth: Record<string, string>): Promise<{ status: number; cache: string | null; bytes: Uint8Array }> {
  const res = await api(path, { headers: auth });
  return { status: res.status, cache: res.headers.get('fedge-cache'), bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** The cache write runs after the response (waitUntil): read until it is a hit. */
async function untilHit(path: string, auth: Record<string, string>) {
  for (let i = 0; i < 50; i++) {
    const r = await download(path, auth);
    if (r.cache === 'hit') return r;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${path} never became a cache hit`);
}

describe("version downloads through the edge's cache", () => {
  it('a hot version is served from the cache, without R2, after its first read; auth still applies', async () => {
    const { id } = await createTask();
    const client = await registerClient(id);
    const weights = `/tasks/${id}/models/0/weights`;
    const bin = `/tasks/${id}/models/0/weights.bin`;
    const first = await download(weights, client.auth);
    expect([first.status, first.cache]).toEqual([200, 'miss']);
    const firstBin = await download(bin, ADMIN);
    expect([firstBin.status, firstBin.cache]).toEqual([200, 'miss']);
    const hit = await untilHit(weights, client.auth);
    const hitBin = await untilHit(bin, ADMIN);
    expect(hit.bytes).toEqual(first.bytes);
    expect(hitBin.bytes).toEqual(firstBin.bytes);

    // Take the blob out of R2: the cache still serves it, byte for byte.
    const manifest = (await (await api(`/tasks/${id}/models/0`, { headers: ADMIN })).json()) as { contentHash: string };
    await env.MODELS.delete(weightsKey(id, manifest.contentHash));
    expect(await env.MODELS.head(weightsKey(id, manifest.contentHash))).toBeNull();
    const fromCache = await download(weights, client.auth);
    expect([fromCache.status, fromCache.cache]).toEqual([200, 'hit']);
    expect(fromCache.bytes).toEqual(first.bytes);
    expect((await download(bin, ADMIN)).bytes).toEqual(firstBin.bytes);

    // The cache answers only after the token and the version are checked.
    expect((await download(weights, {})).status).toBe(401);
    const other = await createTask();
    const stranger = await registerClient(other.id);
    expect((await download(weights, stranger.auth)).status).toBe(403);
    expect((await download(`/tasks/${id}/models/7/weights`, client.auth)).status).toBe(404);
    // A conditional request still answers 304 without a body.
    const etag = (await api(weights, { headers: client.auth })).headers.get('etag')!;
    expect((await api(weights, { headers: { ...client.auth, 'if-none-match': etag } })).status).toBe(304);
  });

  it('answers one byte range with 206 (a resumed download), past the end with 416, and several ranges with the whole blob', async () => {
    const { id } = await createTask();
    const client = await registerClient(id);
    const path = `/tasks/${id}/models/0/weights`;
    const whole = await download(path, client.auth);
    const size = whole.bytes.length;
    const ranged = async (range: string) => {
      const res = await api(path, { headers: { ...client.auth, range } });
      return { status: res.status, contentRange: res.headers.get('content-range'), bytes: new Uint8Array(await res.arrayBuffer()) };
    };
    const head = await ranged('bytes=0-99');
    expect([head.status, head.contentRange]).toEqual([206, `bytes 0-99/${size}`]);
    expect(head.bytes).toEqual(whole.bytes.subarray(0, 100));
    const rest = await ranged('bytes=100-');
    expect([rest.status, rest.contentRange]).toEqual([206, `bytes 100-${size - 1}/${size}`]);
    // The two pieces are the blob: a download that broke off after 100 bytes resumes here.
    expect(new Uint8Array([...head.bytes, ...rest.bytes])).toEqual(whole.bytes);
    expect((await ranged('bytes=-10')).bytes).toEqual(whole.bytes.subarray(size - 10));
    const past = await ranged(`bytes=${size}-`);
    expect([past.status, past.contentRange]).toEqual([416, `bytes */${size}`]);
    expect(JSON.parse(new TextDecoder().decode(past.bytes)).error.code).toBe('range_not_satisfiable');
    const several = await ranged('bytes=0-1,5-6');
    expect([several.status, several.bytes.length]).toEqual([200, size]);
  });
});
