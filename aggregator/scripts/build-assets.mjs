#!/usr/bin/env node
// @ts-check
/**
 * @module Builds the platform's static assets (aggregator/static/, served by Workers Static
 * Assets) from what npm installed, into gitignored folders next to the committed files:
 * - the dashboard's script: aggregator/dashboard/src/main.ts bundled with uPlot for browsers
 *   (esbuild) into static/dashboard/build/, with uPlot's stylesheet;
 * - Swagger UI's bundle and stylesheet (swagger-ui-dist) into static/docs/assets/swagger-ui-dist/,
 *   so /docs needs no CDN.
 * wrangler runs it before `wrangler dev` and `wrangler deploy` (the `build` section of
 * wrangler.jsonc); `node aggregator/scripts/build-assets.mjs` runs it by hand.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const staticDir = join(root, 'aggregator', 'static');
const require = createRequire(import.meta.url);
const started = performance.now();

const dashboard = join(staticDir, 'dashboard', 'build');
mkdirSync(dashboard, { recursive: true });
await build({
  entryPoints: [join(root, 'aggregator', 'dashboard', 'src', 'main.ts')],
  outfile: join(dashboard, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome111', 'firefox111', 'safari16.4'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(dirname(require.resolve('uplot')), 'uPlot.min.css'), join(dashboard, 'uplot.css'));

const swagger = join(staticDir, 'docs', 'assets', 'swagger-ui-dist');
mkdirSync(swagger, { recursive: true });
const swaggerDist = dirname(require.resolve('swagger-ui-dist/package.json'));
for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE', 'NOTICE']) copyFileSync(join(swaggerDist, file), join(swagger, file));

process.stdout.write(`[fedge] static assets built in ${Math.round(performance.now() - started)} ms\n`);
