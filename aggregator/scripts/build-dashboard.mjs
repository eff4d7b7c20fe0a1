#!/usr/bin/env node
// @ts-check
/**
 * @module Builds the operator dashboard's script: bundles aggregator/dashboard/src/main.ts (with
 * uPlot) for browsers into aggregator/dashboard/public/dashboard/build/ (gitignored), next to the
 * committed index.html and dashboard.css. wrangler runs it before `wrangler dev` and `wrangler
 * deploy` (the `build` section of wrangler.jsonc); `node aggregator/scripts/build-dashboard.mjs`
 * runs it by hand.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = join(root, 'aggregator', 'dashboard', 'public', 'dashboard', 'build');
mkdirSync(outDir, { recursive: true });

const started = performance.now();
await build({
  entryPoints: [join(root, 'aggregator', 'dashboard', 'src', 'main.ts')],
  outfile: join(outDir, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome111', 'firefox111', 'safari16.4'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});
const require = createRequire(import.meta.url);
copyFileSync(join(dirname(require.resolve('uplot')), 'uPlot.min.css'), join(outDir, 'uplot.css'));
process.stdout.write(`[fedge] dashboard built in ${Math.round(performance.now() - started)} ms\n`);
