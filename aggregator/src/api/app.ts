/**
 * @module The edge API: a Hono app under `/v1`, its error handler and its OpenAPI document.
 */
import { cors } from 'hono/cors';
import { errorResponse, onError } from './errors.ts';
import { newRouter } from './router.ts';
import { modelsApp } from './routes/models.ts';
import { participationApp } from './routes/participation.ts';
import { roundsApp } from './routes/rounds.ts';
import { tasksApp } from './routes/tasks.ts';

/** Builds the app: `/v1` routes, `/openapi.json`, JSON errors for everything else. */
export function createApp() {
  const app = newRouter();
  const v1 = newRouter();
  // Browser clients call from the app's own origin. Auth is a bearer header, never a cookie, so
  // any origin may call; the preflight is answered here.
  v1.use('*', cors({ origin: '*', allowHeaders: ['authorization', 'content-type'], allowMethods: ['GET', 'POST', 'PUT', 'OPTIONS'], exposeHeaders: ['retry-after', 'etag', 'fedge-replayed'], maxAge: 86_400 }));
  v1.route('/', tasksApp).route('/', participationApp).route('/', modelsApp).route('/', roundsApp);
  v1.get('/health', (c) => c.json({ ok: true }));
  app.route('/v1', v1);
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'fedge aggregation service', version: '1', description: 'Federated learning on Cloudflare Workers. Errors are `{ "error": { "code", "message" } }` with stable codes.' },
    security: [{ bearer: [] }],
  });
  app.notFound((c) => errorResponse('not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError(onError);
  return app;
}
