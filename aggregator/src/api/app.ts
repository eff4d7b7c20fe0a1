/**
 * @module The edge API: a Hono app under `/v1`, its error handler and its OpenAPI document.
 */
import { corsByRoute } from './cors.ts';
import { errorResponse, onError } from './errors.ts';
import { newRouter } from './router.ts';
import { adminTokensApp } from './routes/admin-tokens.ts';
import { clientsApp } from './routes/clients.ts';
import { enrollmentApp } from './routes/enrollment.ts';
import { identityProvidersApp } from './routes/identity-providers.ts';
import { lifecycleApp } from './routes/lifecycle.ts';
import { modelsApp } from './routes/models.ts';
import { participationApp } from './routes/participation.ts';
import { roundsApp } from './routes/rounds.ts';
import { tasksApp } from './routes/tasks.ts';
import { tfjsModelsApp } from './routes/tfjs-models.ts';

/** Builds the app: `/v1` routes, `/openapi.json`, `/` → the dashboard, JSON errors for everything else. */
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
    .route('/', modelsApp)
    .route('/', tfjsModelsApp)
    .route('/', roundsApp)
    .route('/', adminTokensApp);
  v1.get('/health', (c) => c.json({ ok: true }));
  app.route('/v1', v1);
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
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'fedge aggregation service',
      version: '1',
      description: 'Federated learning on Cloudflare Workers. Errors are `{ "error": { "code", "message" } }` with stable codes.',
    },
  });
  // The dashboard is static (Workers Static Assets, aggregator/dashboard/public): the root leads to it.
  app.get('/', (c) => c.redirect('/dashboard/', 302));
  app.notFound((c) => errorResponse('not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError(onError);
  return app;
}
