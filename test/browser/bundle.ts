/**
 * @module The browser bundling step: builds a page's module script (the SDK, TensorFlow.js and the
 * page's own code in one ES module) with esbuild for `platform: 'browser'`, and copies the page's
 * HTML next to it, so the folder can be served as is.
 *
 * Used by sdk.browser.test.ts; also runnable by hand to look at the test page in a real browser:
 *
 * ```sh
 * npx node test/browser/bundle.ts /tmp/fedge-page   # then serve /tmp/fedge-page over http://127.0.0.1
 * ```
 */

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BrowserBundle {
  /** The folder that holds the page and its script. */
  dir: string;
  /** The HTML page's file name inside `dir`. */
  page: string;
  /** The bundled script's path inside `dir` (as the page refers to it). */
  script: string;
  /** The bundled script's text. */
  text: string;
  metafile: Metafile;
  buildMs: number;
}

export interface BundleOptions {
  /** The page's TypeScript entry (absolute, or relative to the repository root). */
  entry: string;
  /** The HTML page to copy next to the bundle. */
  html: string;
  /** Output folder (created). */
  outDir: string;
  /** Where the HTML expects the script, relative to the page; default the entry's name with `.js`. */
  scriptPath?: string;
}

/** Bundles `entry` for the browser into `outDir/scriptPath` and copies `html` into `outDir`. */
export async function bundlePage(options: BundleOptions): Promise<BrowserBundle> {
  const entry = resolve(REPO_ROOT, options.entry);
  const html = resolve(REPO_ROOT, options.html);
  const script = options.scriptPath ?? `${basename(entry).replace(/\.ts$/, '')}.js`;
  const outfile = join(options.outDir, script);
  mkdirSync(dirname(outfile), { recursive: true });
  const t0 = performance.now();
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile,
    sourcemap: 'linked',
    metafile: true,
    absWorkingDir: REPO_ROOT,
    logLevel: 'silent',
  });
  const buildMs = performance.now() - t0;
  copyFileSync(html, join(options.outDir, basename(html)));
  return { dir: options.outDir, page: basename(html), script, text: readFileSync(outfile, 'utf8'), metafile: result.metafile, buildMs };
}

/**
 * Everything in a bundle that ties it to Node rather than the browser: `node:` specifiers or
 * Node built-in modules among its inputs or imports, module-level `require`/`import` of Node
 * built-ins left in its text. Packages' own `browser` field replacements (esbuild's
 * `(disabled):fs`, an empty module, as TensorFlow.js asks for) are not Node APIs and not listed.
 */
export function nodeOnlyApis(bundle: Pick<BrowserBundle, 'text' | 'metafile'>): string[] {
  const found: string[] = [];
  const builtin =
    /^(node:|(assert|async_hooks|buffer|child_process|cluster|crypto|dgram|dns|events|fs|fs\/promises|http|http2|https|inspector|module|net|os|path|perf_hooks|process|readline|stream|string_decoder|tls|tty|url|util|v8|vm|worker_threads|zlib)$)/;
  for (const [input, info] of Object.entries(bundle.metafile.inputs)) {
    if (input.startsWith('node:')) found.push(`input ${input}`);
    for (const imp of info.imports) {
      if (imp.path.startsWith('(disabled):')) continue;
      if (builtin.test(imp.path)) found.push(`${input} imports ${imp.path}${imp.external ? ' (external)' : ''}`);
    }
  }
  for (const m of bundle.text.matchAll(
    /\b(?:require\s*\(|import\s*\(|from\s*)\s*["'](node:[\w/]+|fs|child_process|worker_threads|net|http|https|os|path)["']/g,
  ))
    found.push(`bundle text: ${m[0]}`);
  return found;
}

/** The bundle's inputs from this repository (not node_modules), relative to the repo root. */
export function repoInputs(metafile: Metafile): string[] {
  return Object.keys(metafile.inputs).filter(
    (p) => !p.includes('node_modules') && !p.startsWith('(disabled):') && !relative(REPO_ROOT, resolve(REPO_ROOT, p)).startsWith('..'),
  );
}

// `npx node test/browser/bundle.ts <outDir>`: bundle the test page for a look in a real browser.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = process.argv[2] ? resolve(process.argv[2]) : mkdtempSync(join(tmpdir(), 'fedge-page-'));
  const b = await bundlePage({ entry: 'test/browser/page.ts', html: 'test/browser/page.html', outDir });
  const problems = nodeOnlyApis(b);
  console.log(
    `${join(b.dir, b.page)} + ${b.script} (${(b.text.length / 1024).toFixed(0)} KiB) in ${b.buildMs.toFixed(0)} ms; Node-only APIs: ${problems.length ? problems.join(', ') : 'none'}`,
  );
}
