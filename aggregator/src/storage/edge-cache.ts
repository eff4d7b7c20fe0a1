/**
 * @module The edge's cache in front of R2 for version downloads. A version's bytes never change
 * (content-addressed: the key holds their SHA-256), so the Workers Cache API (`caches.default`,
 * the data centre's cache) can keep them with no invalidation: a hot version is read from R2 once
 * per location, then served from the cache. Authentication and the version lookup still run on
 * every request: the cache key holds no token, and only what a caller may read is looked up.
 *
 * Cloudflare documents that the Cache API stores nothing on `*.workers.dev` hostnames (a custom
 * domain is needed for hits there); `wrangler dev` and the tests run it locally.
 */

/** The cache key of one blob: a URL of its own namespace, never a request's (which would hold query or auth). */
export function cacheKey(name: string): Request {
  return new Request(`https://blob-cache.fedge.internal/${encodeURIComponent(name)}`);
}

export interface Blob {
  body: ReadableStream;
  size: number;
  /** Served from the cache (true) or read from R2 and being cached (false). */
  hit: boolean;
}

/**
 * The blob `name` from the cache, or from `load` (R2), caching it in the background (`waitUntil`).
 * `load` answers null when the blob is missing.
 */
export async function cachedBlob(
  name: string,
  load: () => Promise<{ body: ReadableStream; size: number } | null>,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<Blob | null> {
  const cache = edgeCache();
  const key = cacheKey(name);
  const hit = cache ? await cache.match(key) : undefined;
  if (hit?.body) return { body: hit.body, size: Number(hit.headers.get('content-length') ?? 0), hit: true };
  const loaded = await load();
  if (!loaded) return null;
  if (!cache) return { ...loaded, hit: false };
  // One branch to the caller, one to the cache: the cache writes as the caller reads.
  const [toCaller, toCache] = loaded.body.tee();
  const stored = new Response(toCache, {
    headers: { 'content-length': String(loaded.size), 'cache-control': 'public, max-age=31536000, immutable', 'content-type': 'application/octet-stream' },
  });
  waitUntil(cache.put(key, stored).catch(() => {})); // a failed cache write costs only a later R2 read
  return { body: toCaller, size: loaded.size, hit: false };
}

/** The response headers of a served blob: its type and length, and whether the cache served it. */
export function blobHeaders(blob: Blob): Record<string, string> {
  return { 'content-type': 'application/octet-stream', 'content-length': String(blob.size), 'fedge-cache': blob.hit ? 'hit' : 'miss' };
}

function edgeCache(): Cache | null {
  const c = (globalThis as { caches?: { default?: Cache } }).caches;
  return c?.default ?? null;
}
