/**
 * The Worker bundle as `wrangler deploy` would upload it: it builds, it stays light, and it never
 * pulls in TensorFlow.js or Node-only modules (the aggregator imports only the shared wire module
 * from the SDK).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

const out = mkdtempSync(join(tmpdir(), 'fedge-bundle-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('worker bundle', () => {
  it('builds with wrangler deploy --dry-run (its three Durable Object classes), without tfjs, under 400 KiB gzipped', () => {
    const log = execFileSync('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', out], {
      encoding: 'utf8',
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_HIDE_BANNER: 'true' },
    });
    expect(log).toMatch(/env\.AGGREGATOR \(TaskAggregator\)\s+Durable Object/);
    // The sharded configuration: the shards' class bound and exported, and created by a migration of its own.
    expect(log).toMatch(/env\.SHARDS \(RoundShard\)\s+Durable Object/);
    // The parameter-range shards of large models, likewise.
    expect(log).toMatch(/env\.RANGES \(RangeAggregator\)\s+Durable Object/);
    const config = readFileSync('wrangler.jsonc', 'utf8');
    expect(config).toMatch(/"tag": "v2", "new_sqlite_classes": \["RoundShard"\]/);
    expect(config).toMatch(/"tag": "v3", "new_sqlite_classes": \["RangeAggregator"\]/);
    const files = readdirSync(out);
    expect(files.some((f) => f.endsWith('accumulate.wasm'))).toBe(true);
    const js = readFileSync(join(out, 'index.js'));
    const text = js.toString('utf8');
    expect(text).toMatch(/export \{[^}]*\bRoundShard\b[^}]*\}/);
    expect(text).toMatch(/export \{[^}]*\bRangeAggregator\b[^}]*\}/);
    expect(text).not.toMatch(/@tensorflow|tfjs-core/);
    expect(text).not.toMatch(/from\s*["']node:fs["']/);
    expect(gzipSync(js).length).toBeLessThan(400 * 1024);
  }, 120_000);
});
