/**
 * @module The edge API: a Hono app under `/v1`, its error handler, its OpenAPI document and reference.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { corsByRoute } from './cors.ts';
import { errorResponse, onError } from './errors.ts';
import { serveDocs } from './openapi.ts';
import { newRouter } from './router.ts';
import { adminTokensApp } from './routes/admin-tokens.ts';
import { clientsApp } from './routes/clients.ts';
import { enrollmentApp } from './routes/enrollment.ts';
import { identityProvidersApp } from './routes/identity-providers.ts';
import { lifecycleApp } from './routes/lifecycle.ts';
import { modelsApp } from './routes/models.ts';
import { participationApp } from './routes/participation.ts';
import { roundsApp } from './routes/rounds.ts';
import { secaggApp } from './routes/secagg.ts';
import { tasksApp } from './routes/tasks.ts';
import { tfjsModelsApp } from './routes/tfjs-models.ts';
import { weightUploadsApp } from './routes/weight-uploads.ts';

/** Builds the app: `/v1` routes, `/openapi.json` and `/docs`, `/` → the dashboard, JSON errors for everything else. */
export function createApp() {
  const app = newRouter();
  const v1 = newRouter();
  // Browser clients call from the app's own origin (auth is a bearer header, never a cookie);
  // operator routes answer only the configured ADMIN_ORIGINS. Preflights are answered here.
  v1.use('*', corsByRoute(v1, '/v1'));
  v1.route('/', tasksApp)
    .route('/', lifecycleApp)
    .route('/', clientsApp)
    .route('/', enrollmentApp)
    .route('/', identityProvidersApp)
    .route('/', participationApp)
    .route('/', secaggApp)
    .route('/', modelsApp)
    .route('/', tfjsModelsApp)
    .route('/', roundsApp)
    .route('/', adminTokensApp)
    .route('/', weightUploadsApp);
  v1.openapi(
    createRoute({
      method: 'get',
      path: '/health',
      operationId: 'getHealth',
      tags: ['service'],
      summary: 'Liveness: the Worker answers (no token, touches no storage)',
      security: [],
      responses: { 200: { description: 'Up', content: { 'application/json': { schema: z.object({ ok: z.literal(true) }).openapi('Health') } } } },
    }),
    (c) => c.json({ ok: true as const }, 200),
  );
  app.route('/v1', v1);
  serveDocs(app);
  // The dashboard is static (Workers Static Assets, aggregator/static): the root leads to it.
  app.get('/', (c) => c.redirect('/dashboard/', 302));
  // No icon: browsers ask for one on every page (/docs, the dashboard); answer without an error.
  app.get('/favicon.ico', (c) => c.body(null, 204, { 'cache-control': 'public, max-age=86400' }));
  app.notFound((c) => errorResponse('not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError(onError);
  return app;
}
