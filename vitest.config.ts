import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

/**
 * Two projects:
 * - `workers`: runs inside workerd with real D1, R2 and Durable Object storage (the Cloudflare
 *   Vitest integration), migrations applied by test/worker/setup.ts.
 * - `node`: pure modules (codec, kernels, state machine), the client SDK and the simulated clients.
 */
export default defineConfig({
  test: {
    // Two files at a time (vitest's default on 2 cores is 1): most files wait on wrangler dev or
    // workerd, so the suite takes about half as long.
    maxWorkers: 2,
    projects: [
      {
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: './wrangler.jsonc' },
            miniflare: {
              bindings: {
                ADMIN_TOKEN: 'test-admin-token',
                ADMIN_ORIGINS: 'https://ops.example',
                // Stalled uploads are cut off after 1 s here (10 s by default), so the tests that stall one are quick.
                UPLOAD_IDLE_SECONDS: '1',
                // A sharded round waits 1 s (30 s by default) for a shard that cannot be sealed.
                SHARD_SEAL_GRACE_SECONDS: '1',
                // Models above 2M parameters are split into ranges of 1,376,256 (5.25 MiB parts, R2's
                // smallest are 5 MiB): a 3M-parameter model has three ranges (4M and 2,097,152 by default).
                RANGED_ABOVE_PARAMS: '2000000',
                RANGE_PARAMS: '1376256',
                TEST_MIGRATIONS: await readD1Migrations('./migrations'),
              },
            },
          })),
        ],
        test: {
          name: 'workers',
          include: ['test/worker/**/*.test.ts'],
          setupFiles: ['./test/worker/setup.ts'],
        },
      },
      {
        test: {
          name: 'node',
          environment: 'node',
          include: [
            'aggregator/src/**/*.test.ts',
            'client-sdk/**/*.test.ts',
            'test/node/**/*.test.ts',
            'test/browser/**/*.test.ts',
            'test/package/**/*.test.ts',
          ],
          globalSetup: ['./test/node/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
