import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { RunningSum } from '../../aggregator/src/kernels/running-sum.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import {
  ADMIN,
  api,
  checkIn,
  createTask,
  downloadWeights,
  encodeUpdate,
  fedavgReference,
  initialWeights,
  maxAbsDiff,
  randomDelta,
  registerClient,
  stubOf,
  submit,
} from './helpers.ts';

describe('a whole round on the real runtime', () => {
  it('publishes base + Σ nᵢΔᵢ / Σ nᵢ as version 1, then opens round 2 on it', async () => {
    // Prepare
    const { id, task } = await createTask({ clientsPerRound: 3 });
    expect(task).toMatchObject({ currentVersion: 0, numParams: 15, currentRound: { round: 1, status: 'open', assigned: 0 } });
    const clients = await Promise.all([1, 2, 3].map(() => registerClient(id)));
    const updates = [
      { delta: randomDelta(1), n: 10 },
      { delta: randomDelta(2), n: 35 },
      { delta: randomDelta(3), n: 7 },
    ];

    // Execute
    for (const [i, c] of clients.entries()) {
      const ci = await checkIn(id, c);
      expect(ci.body).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0, plan: { epochs: 1, batchSize: 8, learningRate: 0.1 } });
      const r = await submit(id, c, 1, encodeUpdate(updates[i]!.delta, { baseVersion: 0, numExamples: updates[i]!.n, metrics: { loss: i + 1 } }));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ round: 1, clientId: c.clientId, seq: i + 1, numExamples: updates[i]!.n });
    }
    // Each float32 body was read straight into the running sum's Wasm memory and folded in place (no copy).
    expect(await runInDurableObject(stubOf(id), (o: TaskAggregator) => (o as unknown as { acc: RunningSum }).acc.inPlaceAdds)).toBe(3);
    expect(await runDurableObjectAlarm(stubOf(id))).toBe(true);

    // Assert
    const published = await downloadWeights(id, 1);
    expect(maxAbsDiff(published, fedavgReference(initialWeights(), updates))).toBeLessThanOrEqual(1e-6);
    const manifest = await (await api(`/tasks/${id}/models/1`, { headers: ADMIN })).json<any>();
    expect(manifest).toMatchObject({ version: 1, parentVersion: 0, round: 1, participants: 3, numExamples: 52 });
    expect(manifest.metrics.loss).toBeCloseTo((1 * 10 + 2 * 35 + 3 * 7) / 52, 12);
    const status = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(status).toMatchObject({ currentVersion: 1, currentRound: { round: 2, status: 'open', baseVersion: 1, accepted: 0 } });
    const round = await (await api(`/tasks/${id}/rounds/1`, { headers: ADMIN })).json<any>();
    expect(round).toMatchObject({ round: 1, status: 'closed', resultVersion: 1, accepted: 3, rejected: 0, closeReason: 'goal_reached' });
    expect(round.participants.map((p: any) => p.clientId).sort()).toEqual(clients.map((c) => c.clientId).sort());
    // Versions are immutable: cacheable forever, ETag = content hash, 304 on a match.
    const blob = await api(`/tasks/${id}/models/1/weights`, { headers: clients[0]!.auth });
    expect(blob.headers.get('etag')).toBe(`"${manifest.contentHash}"`);
    expect(blob.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(Number(blob.headers.get('content-length'))).toBe(manifest.byteLength);
    await blob.arrayBuffer();
    const cached = await api(`/tasks/${id}/models/1/weights`, { headers: { ...clients[0]!.auth, 'if-none-match': `"${manifest.contentHash}"` } });
    expect(cached.status).toBe(304);
    const current = await (await api(`/tasks/${id}/models/current`, { headers: clients[1]!.auth })).json<any>();
    expect(current).toMatchObject({ version: 1, contentHash: manifest.contentHash, weightsUrl: `/v1/tasks/${id}/models/1/weights` });
    const next = await checkIn(id, clients[0]!);
    expect(next.body).toMatchObject({ status: 'assigned', round: 2, baseVersion: 1 });
  });
});

describe('OpenAPI document', () => {
  it('is served by the API and describes every route with its schemas', async () => {
    const { SELF } = await import('cloudflare:test');
    const doc = await (await SELF.fetch('https://fedge.test/openapi.json')).json<any>();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/v1/tasks',
        '/v1/tasks/{taskId}',
        '/v1/tasks/{taskId}/checkin',
        '/v1/tasks/{taskId}/clients',
        '/v1/tasks/{taskId}/clients/{clientId}/revoke',
        '/v1/tasks/{taskId}/clients/{clientId}/token',
        '/v1/admin/tokens',
        '/v1/admin/tokens/{tokenId}/revoke',
        '/v1/tasks/{taskId}/models',
        '/v1/tasks/{taskId}/models/current',
        '/v1/tasks/{taskId}/models/{version}',
        '/v1/tasks/{taskId}/models/{version}/weights',
        '/v1/tasks/{taskId}/models/{version}/evaluation',
        '/v1/tasks/{taskId}/models/{version}/server-metrics',
        '/v1/tasks/{taskId}/rounds',
        '/v1/tasks/{taskId}/rounds/{round}',
        '/v1/tasks/{taskId}/rounds/{round}/update',
        '/v1/tasks/{taskId}/rounds/{round}/update/chunks/{index}',
        '/v1/tasks/{taskId}/rounds/{round}/update/commit',
        ...['keys', 'roster', 'shares', 'inbox', 'masked', 'unmask', 'reveal'].map((p) => `/v1/tasks/{taskId}/rounds/{round}/secagg/${p}`),
        '/v1/tasks/{taskId}/enrollment-keys',
        '/v1/tasks/{taskId}/enrollment-keys/{keyId}/revoke',
        '/v1/tasks/{taskId}/enroll',
        '/v1/tasks/{taskId}/pause',
        '/v1/tasks/{taskId}/resume',
        '/v1/tasks/{taskId}/stop',
        '/v1/tasks/{taskId}/identity-providers',
        '/v1/tasks/{taskId}/identity-providers/{providerId}/revoke',
        '/v1/tasks/{taskId}/models/current/model.json',
        '/v1/tasks/{taskId}/models/{version}/model.json',
        '/v1/tasks/{taskId}/models/{version}/weights.bin',
        '/v1/weight-uploads',
        '/v1/weight-uploads/{uploadId}/chunks/{index}',
        '/v1/health',
      ].sort(),
    );
    expect(doc.components.schemas).toHaveProperty('CreateTask');
    expect(doc.paths['/v1/tasks/{taskId}/rounds/{round}/update'].put.responses).toHaveProperty('409');
    // Every stable error code is in the document, and each route's error responses name their codes.
    const { ERROR_STATUS } = await import('#protocol/codes.ts');
    const documented = Object.keys(doc.components.schemas)
      .filter((n) => /^Error\d{3}$/.test(n))
      .flatMap((n) => doc.components.schemas[n].properties.error.properties.code.enum);
    expect(documented.sort()).toEqual(Object.keys(ERROR_STATUS).sort());
    expect(doc.paths['/v1/tasks/{taskId}/rounds/{round}/update'].put.responses['415'].description).toBe('Error: `unsupported_media_type`');
    expect(doc.paths['/v1/tasks'].post.responses['400'].description).toContain('`weights_mismatch`');
    // Enrollment needs no token (the key is in the body); creating keys needs the operator's.
    expect(doc.paths['/v1/tasks/{taskId}/enroll'].post.security).toEqual([]);
    expect(doc.paths['/v1/tasks/{taskId}/enrollment-keys'].post.security).toEqual([{ operator: [] }]);
  });
});

describe('CORS for browser clients', () => {
  it('answers the preflight and exposes the headers the SDK reads', async () => {
    const { SELF } = await import('cloudflare:test');
    const pre = await SELF.fetch('https://fedge.test/v1/tasks/x/checkin', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-methods')).toContain('PUT');
    expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
    const res = await SELF.fetch('https://fedge.test/v1/tasks/x/models/current', { headers: { origin: 'https://app.example' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toContain('retry-after');
  });

  it('answers operator routes only for ADMIN_ORIGINS (here https://ops.example), whatever the token', async () => {
    const { SELF } = await import('cloudflare:test');
    const preflight = (path: string, method: string, origin: string) =>
      SELF.fetch(`https://fedge.test${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization' },
      });
    const operator: [string, string][] = [
      ['/v1/tasks', 'POST'],
      ['/v1/tasks', 'GET'],
      ['/v1/tasks/t1/clients', 'POST'],
      ['/v1/tasks/t1/rounds/3', 'GET'],
      ['/v1/tasks/t1/models/2/server-metrics', 'PUT'],
      ['/v1/admin/tokens', 'POST'],
    ];
    for (const [path, method] of operator) {
      expect({ path, method, acao: (await preflight(path, method, 'https://evil.example')).headers.get('access-control-allow-origin') }).toEqual({
        path,
        method,
        acao: null,
      });
      expect((await preflight(path, method, 'https://ops.example')).headers.get('access-control-allow-origin')).toBe('https://ops.example');
    }
    // Client routes (and routes open to both) stay open to every origin; a PUT of an update is not the GET of rounds.
    for (const [path, method] of [
      ['/v1/tasks/t1/rounds/3/update', 'PUT'],
      ['/v1/tasks/t1/checkin', 'POST'],
      ['/v1/tasks/t1', 'GET'],
      ['/v1/tasks/t1/models/2/weights', 'GET'],
    ] as const) {
      expect((await preflight(path, method, 'https://evil.example')).headers.get('access-control-allow-origin')).toBe('*');
    }
    const actual = await SELF.fetch('https://fedge.test/v1/tasks', { headers: { origin: 'https://evil.example', authorization: 'Bearer test-admin-token' } });
    expect(actual.status).toBe(200); // not a browser: the server answers, but no browser page may read it
    expect(actual.headers.get('access-control-allow-origin')).toBeNull();
  });
});
