/**
 * Starts one real aggregator (`wrangler dev`, fresh state folder, free port) for the Node-side
 * tests that need a server (SDK, simulated clients), and stops it after the run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { findFreePort, startLocalServer } from '../../aggregator/scripts/lib/local-server.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    fedgeUrl: string;
    fedgeAdminToken: string;
  }
}

export default async function setup(project: TestProject) {
  const stateDir = mkdtempSync(join(tmpdir(), 'fedge-node-tests-'));
  // Models above 2M parameters are split into ranges of 1,376,256 here (4M and 2,097,152 by
  // default), so the SDK's chunked uploads are tested on a model tfjs trains in a second.
  const server = await startLocalServer({
    port: await findFreePort(),
    stateDir,
    adminToken: 'node-tests-admin',
    onOutput: () => {},
    extraArgs: ['--var', 'RANGED_ABOVE_PARAMS:2000000', '--var', 'RANGE_PARAMS:1376256'],
  });
  project.provide('fedgeUrl', server.url);
  project.provide('fedgeAdminToken', server.adminToken);
  return async () => {
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  };
}
