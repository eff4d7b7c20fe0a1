/**
 * @module Headless Chromium for the browser tests (playwright-core driving Debian's chromium) and
 * the static server their pages load from (127.0.0.1, another origin than the aggregator's).
 *
 * Needs Chromium at /usr/bin/chromium (or FEDGE_CHROMIUM): `apt-get install -y chromium`;
 * .ci/run installs it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

const CHROMIUM = process.env.FEDGE_CHROMIUM ?? '/usr/bin/chromium';
/** As this machine's probe starts it: without the background-networking flags Chromium's own connections are refused by the closed network. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches headless Chromium, or says how to install it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the browser tests need it. Install it with ` +
        '`apt-get update && apt-get install -y --no-install-recommends chromium` (Debian/Ubuntu, as root; .ci/run does this), ' +
        'or point FEDGE_CHROMIUM at a Chromium/Chrome binary.',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Serves `root` on 127.0.0.1 (a free port): the pages' origin, distinct from the aggregator's. */
export async function serveStatic(root: string): Promise<{ server: Server; origin: string }> {
  const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json' };
  const srv = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(root, path);
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const address = srv.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return { server: srv, origin: `http://127.0.0.1:${address.port}` };
}
