/**
 * @module The OpenAPI document (`/openapi.json`) and its interactive reference (`/docs`): the two
 * security schemes, the response headers routes declare, the errors every route can answer
 * (completed from what each route declares, so no route can forget them), the document's info
 * and `servers`, and Swagger UI served from the platform's own static assets (no CDN).
 */

import { swaggerUI } from '@hono/swagger-ui';
import type { OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from './auth.ts';
import { type ErrorStatus, errors } from './schemas.ts';

type HeaderObject = { description: string; schema: { type: 'string' | 'integer'; enum?: string[]; minimum?: number } };

/** `Cache-Control` of what never changes (a version's weights and model.json): the routes send it, the document declares it. */
export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';

/** Response headers, for the `headers` of a route's response. */
export const HEADERS = {
  etag: { ETag: { description: 'Strong entity tag of the content (quoted); send it back as `If-None-Match` to get 304', schema: { type: 'string' } } },
  immutable: {
    'Cache-Control': { description: `\`${CACHE_IMMUTABLE}\`: a version never changes`, schema: { type: 'string', enum: [CACHE_IMMUTABLE] } },
  },
  revalidate: { 'Cache-Control': { description: '`no-cache`: it moves with every new version, revalidate', schema: { type: 'string', enum: ['no-cache'] } } },
  retryAfter: { 'Retry-After': { description: 'Seconds to wait before checking in again', schema: { type: 'integer', minimum: 0 } } },
  cache: {
    'fedge-cache': {
      description: "`hit` when the edge's cache served the bytes, `miss` when they were read from R2 (and are being cached)",
      schema: { type: 'string', enum: ['hit', 'miss'] },
    },
  },
  contentRange: {
    'Content-Range': { description: '`bytes START-END/SIZE`: which bytes of the blob this is', schema: { type: 'string' } },
    'Accept-Ranges': { description: '`bytes`', schema: { type: 'string', enum: ['bytes'] } },
  },
  replayed: {
    'fedge-replayed': {
      description: '`true` when this answers a retry of an update already accepted: the same ack, counted once',
      schema: { type: 'string', enum: ['true'] },
    },
  },
} satisfies Record<string, Record<string, HeaderObject>>;

/** The 200 and 304 responses of an immutable binary download (weights, weights.bin, a version's model.json). */
export function immutableDownload(
  description: string,
  mediaType: 'application/octet-stream' | 'application/json',
  schema: z.ZodType,
  options: { cached?: boolean } = {},
) {
  const headers = { ...HEADERS.etag, ...HEADERS.immutable };
  return {
    200: {
      description,
      headers: options.cached ? { ...headers, ...HEADERS.cache } : headers,
      content: { [mediaType]: { schema } } as Record<string, { schema: z.ZodType }>,
    },
    304: { description: 'Not modified: `If-None-Match` named the current ETag', headers },
  };
}

interface RouteDefinition {
  request?: { params?: unknown; query?: unknown; body?: unknown; headers?: unknown };
  security?: Record<string, string[]>[];
  responses: Record<string, unknown>;
}

/**
 * Adds the errors any route can answer to those it declares: 400 `invalid_request` when it
 * validates input, 401 and 429 (failed authentications per source, a client's rate) when it needs
 * a token, 500 `internal_error` always.
 */
export function completeErrorResponses(route: RouteDefinition): void {
  const add = (status: ErrorStatus) => {
    if (!(status in route.responses)) Object.assign(route.responses, errors(status));
  };
  const r = route.request;
  if (r && (r.params || r.query || r.body || r.headers)) add(400);
  if ((route.security ?? []).length > 0) {
    add(401);
    add(429);
  }
  add(500);
}

/** The document at `/openapi.json` (its `servers` entry is the origin it was fetched from) and Swagger UI at `/docs`. */
export function serveDocs(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'operator', {
    type: 'http',
    scheme: 'bearer',
    description: 'An operator token: the ADMIN_TOKEN secret, or one minted by POST /v1/admin/tokens',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'client', {
    type: 'http',
    scheme: 'bearer',
    description: 'A client token (`<clientId>.<secret>`), bound to one task',
  });
  for (const d of app.openAPIRegistry.definitions) if (d.type === 'route') completeErrorResponses(d.route as RouteDefinition);
  app.doc31('/openapi.json', (c) => ({
    openapi: '3.1.0',
    info: {
      title: 'fedge aggregation service',
      version: '1',
      description: [
        'Federated learning on Cloudflare Workers: clients check in, train locally and submit updates; the task’s aggregator publishes a model version per round.',
        '',
        '- **Errors** are `{ "error": { "code", "message" } }`; each error response lists its codes as an enum, and the codes are stable.',
        '- **Times** are ISO 8601 date-times in UTC (`2026-12-02T14:03:05.123Z`); **durations** are whole seconds in fields named `…Seconds`.',
        '- **Auth**: a bearer token in `Authorization`. Operator routes take an operator token (`operator`), participation routes a client token (`client`); each operation says which.',
      ].join('\n'),
    },
    servers: [{ url: new URL(c.req.url).origin, description: 'This deployment' }],
  }));
  // Swagger UI through the maintained Hono middleware, its files from this platform's static
  // assets (aggregator/static/docs/assets, built from swagger-ui-dist) and its start script a file
  // of its own, so the page needs no CDN and its CSP no inline script.
  const page = swaggerUI({
    url: '/openapi.json',
    title: 'fedge API reference',
    baseUrl: '/docs/assets',
    manuallySwaggerUIHtml: (asset) =>
      [
        '<div id="swagger-ui"></div>',
        ...asset.css.map((href) => `<link rel="stylesheet" href="${href}" />`),
        ...asset.js.map((src) => `<script src="${src}"></script>`),
        '<script src="/docs/assets/init.js"></script>',
      ].join('\n'),
  });
  app.get('/docs', async (c, next) => {
    await next();
    c.header(
      'content-security-policy',
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    c.header('referrer-policy', 'no-referrer');
    c.header('x-content-type-options', 'nosniff');
  });
  app.get('/docs', page);
}
