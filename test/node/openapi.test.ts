/**
 * The OpenAPI document as a generated client sees it, from the real platform (`wrangler dev`,
 * test/node/global-setup.ts): valid OpenAPI 3.1 by a maintained validator, complete (an
 * operationId, declared security, every error with its code enum, headers, one time convention,
 * `servers`), its committed typed client (openapi-typescript) up to date, and that client
 * (openapi-fetch) running a whole round: task, client, check-in, download, update, version.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import createClient from 'openapi-fetch';
import type { OpenAPI3 } from 'openapi-typescript';
import { describe, expect, inject, it } from 'vitest';
import { ERROR_STATUS, type ErrorCode } from '../../client-sdk/src/protocol/codes.ts';
import { UPDATE_META } from '../../client-sdk/src/protocol/messages.ts';
import { decodeTensors, encodeTensors } from '../../client-sdk/src/protocol/safetensors.ts';
import type { paths } from '../openapi/fedge-api.d.ts';
import { apiTypes, TYPES_FILE } from '../openapi/generate.ts';

const url = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');

/** A JSON document walked by key. */
type Json = any;
const doc: Json = await (await fetch(`${url}/openapi.json`)).json();
const operations: { method: string; path: string; op: Json }[] = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.entries(item as Json).map(([method, op]) => ({ method, path, op })),
);
const resolve = (ref: string): Json =>
  ref
    .split('/')
    .slice(1)
    .reduce((o: Json, k) => o[k], doc);

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('names every operation, says which token it needs, and lists /v1/health and this server', () => {
    expect(operations.length).toBe(46); // 35 + secure aggregation's 7 + chunked updates' 2 + weight uploads' 2
    const ids = operations.map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(doc.servers).toEqual([{ url, description: 'This deployment' }]);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['client', 'operator']);
    const security = (id: string) => operations.find((o) => o.op.operationId === id)!.op.security;
    for (const { op } of operations) expect(Array.isArray(op.security), op.operationId).toBe(true);
    expect(security('getHealth')).toEqual([]);
    expect(security('enroll')).toEqual([]);
    expect(security('createTask')).toEqual([{ operator: [] }]);
    expect(security('submitUpdate')).toEqual([{ client: [] }]);
    expect(security('secaggMaskedInput')).toEqual([{ client: [] }]);
    expect(security('getWeights')).toEqual([{ operator: [] }, { client: [] }]);
  });

  it('gives every error response the enum of exactly its status codes, with the headers that come with them', () => {
    const byStatus = new Map<number, string[]>();
    for (const [code, status] of Object.entries(ERROR_STATUS)) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    for (const { op } of operations) {
      const responses = op.responses as Record<string, Json>;
      expect(responses, op.operationId).toHaveProperty('500');
      if (op.security.length > 0) {
        expect(responses['401']?.headers, op.operationId).toHaveProperty('WWW-Authenticate');
        expect(responses['429']?.headers, op.operationId).toHaveProperty('Retry-After');
      }
      if ((op.parameters ?? []).length > 0 || op.requestBody) expect(responses, op.operationId).toHaveProperty('400');
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) < 400) continue;
        const schema = resolve(response.content['application/json'].schema.$ref);
        expect([...schema.properties.error.properties.code.enum].sort(), `${op.operationId} ${status}`).toEqual(byStatus.get(Number(status))!.sort());
      }
    }
  });

  it('declares the caching and replay headers, If-None-Match, and the version and round parameters as required integers', () => {
    const op = (id: string) => operations.find((o) => o.op.operationId === id)!.op;
    for (const id of ['getWeights', 'getModelJson', 'getWeightsBin']) {
      // The two blob downloads go through the edge's cache and say whether it served them.
      const cached = id === 'getModelJson' ? [] : ['fedge-cache'];
      expect(Object.keys(op(id).responses['200'].headers).sort(), id).toEqual(['Cache-Control', 'ETag', ...cached]);
      if (cached.length) expect(op(id).responses['200'].headers['fedge-cache'].schema.enum).toEqual(['hit', 'miss']);
      expect(Object.keys(op(id).responses['304'].headers).sort(), id).toEqual(['Cache-Control', 'ETag']);
      expect(op(id).parameters.find((p: Json) => p.in === 'header')).toMatchObject({ name: 'if-none-match', required: false });
    }
    expect(op('getCurrentVersion').responses['200'].headers['Cache-Control'].schema.enum).toEqual(['no-cache']);
    expect(op('submitUpdate').responses['200'].headers['fedge-replayed'].schema.enum).toEqual(['true']);
    expect(op('checkIn').responses['200'].headers).toHaveProperty('Retry-After');
    for (const { op: o } of operations)
      for (const p of (o.parameters ?? []) as Json[]) {
        if (p.in === 'path') expect(p.required, `${o.operationId} ${p.name}`).toBe(true);
        if (p.name === 'version' || p.name === 'round') expect(p.schema.type).toBe('integer');
      }
    const update = op('submitUpdate');
    expect(update.requestBody.content['application/octet-stream'].schema).toMatchObject({ type: 'string', format: 'binary' });
    for (const rule of [
      'F32',
      '`__metadata__`',
      'fedge.base_version',
      'fedge.num_examples',
      'fedge.metrics',
      'decimal strings',
      'exactly the task’s tensor set',
    ])
      expect(update.description).toContain(rule);
  });

  it('writes every time the same way: an ISO 8601 date-time (no epoch numbers)', () => {
    const timeFields: string[] = [];
    const walk = (schema: Json, at: string) => {
      if (!schema || typeof schema !== 'object') return;
      for (const [name, prop] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
        if (/At$/.test(name)) {
          timeFields.push(`${at}.${name}`);
          const types = [prop.type].flat();
          expect(types, `${at}.${name}`).toContain('string');
          expect(types, `${at}.${name}`).not.toContain('integer');
          expect(prop.format, `${at}.${name}`).toBe('date-time');
        }
        walk(prop, `${at}.${name}`);
      }
      for (const key of ['items', 'anyOf', 'oneOf', 'allOf']) for (const s of [schema[key]].flat()) walk(s, at);
    };
    for (const [name, schema] of Object.entries(doc.components.schemas)) walk(schema, name);
    expect(timeFields).toEqual(
      expect.arrayContaining(['LiveRound.openedAt', 'LiveRound.deadlineAt', 'UpdateAck.acceptedAt', 'Round.closedAt', 'ModelManifest.createdAt']),
    );
    expect(timeFields.length).toBeGreaterThan(15);
  });

  it('is what the committed typed client was generated from (npm run openapi:types)', async () => {
    expect(await apiTypes(doc as OpenAPI3), 'test/openapi/fedge-api.d.ts is stale: run `npm run openapi:types`').toBe(readFileSync(TYPES_FILE, 'utf8'));
  });

  it('serves an interactive reference at /docs from the same document, with no asset from elsewhere', async () => {
    const res = await fetch(`${url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self';");
    const html = await res.text();
    const assets = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.sort()).toEqual(['/docs/assets/init.js', '/docs/assets/swagger-ui-dist/swagger-ui-bundle.js', '/docs/assets/swagger-ui-dist/swagger-ui.css']);
    for (const a of assets) expect((await fetch(`${url}${a}`)).status, a).toBe(200);
    expect(await (await fetch(`${url}/docs/assets/init.js`)).text()).toContain("url: '/openapi.json'");
  });
});

describe('a client generated from the document (openapi-typescript + openapi-fetch)', () => {
  it('runs a round: create a task, register a client, check in, download, submit, read the new version', async () => {
    const operator = createClient<paths>({ baseUrl: url, headers: { authorization: `Bearer ${adminToken}` } });
    const body = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'aggregator', 'examples', 'tiny-task.json'), 'utf8'));
    const created = await operator.POST('/v1/tasks', { body: { ...body, name: 'generated client' } });
    expect(created.error).toBeUndefined();
    const taskId = created.data!.id;
    const registered = await operator.POST('/v1/tasks/{taskId}/clients', { params: { path: { taskId } }, body: { label: 'openapi-fetch' } });
    const client = createClient<paths>({ baseUrl: url, headers: { authorization: `Bearer ${registered.data!.token}` } });

    const checkIn = await client.POST('/v1/tasks/{taskId}/checkin', { params: { path: { taskId } } });
    expect(checkIn.data).toMatchObject({ status: 'assigned', round: 1, baseVersion: 0 });
    if (checkIn.data?.status !== 'assigned') return;
    expect(Date.parse(checkIn.data.deadlineAt)).toBeGreaterThan(Date.now());

    const weights = await client.GET('/v1/tasks/{taskId}/models/{version}/weights', { params: { path: { taskId, version: 0 } }, parseAs: 'arrayBuffer' });
    const etag = weights.response.headers.get('etag')!;
    const base = decodeTensors(weights.data!);
    const again = await client.GET('/v1/tasks/{taskId}/models/{version}/weights', {
      params: { path: { taskId, version: 0 }, header: { 'if-none-match': etag } },
      parseAs: 'stream',
    });
    expect(again.response.status).toBe(304);

    const delta = base.tensors.map((t) => ({ name: t.name, shape: t.shape, data: t.data.map((_, i) => ((i % 3) - 1) / 100) }));
    const update = encodeTensors(delta, { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: '12', [UPDATE_META.metrics]: '{"loss":0.5}' });
    const submit = () =>
      client.PUT('/v1/tasks/{taskId}/rounds/{round}/update', {
        params: { path: { taskId, round: 1 } },
        body: new Blob([update]),
        bodySerializer: (b) => b,
        headers: { 'content-type': 'application/octet-stream' },
      });
    const ack = await submit();
    expect(ack.data).toMatchObject({ taskId, round: 1, seq: 1, numExamples: 12 });
    expect(new Date(ack.data!.acceptedAt).toISOString()).toBe(ack.data!.acceptedAt);
    const replay = await submit();
    expect(replay.response.headers.get('fedge-replayed')).toBe('true');
    expect(replay.data).toEqual(ack.data);

    const refused = await client.PUT('/v1/tasks/{taskId}/rounds/{round}/update', {
      params: { path: { taskId, round: 1 } },
      body: new Blob([update]),
      bodySerializer: (b) => b,
      headers: { 'content-type': 'text/plain' },
    });
    const code: ErrorCode | undefined = refused.error?.error.code;
    expect([refused.response.status, code]).toEqual([415, 'unsupported_media_type']);

    const version = await operator.GET('/v1/tasks/{taskId}/models/{version}', { params: { path: { taskId, version: 1 } } });
    expect(version.data).toMatchObject({ taskId, version: 1, parentVersion: 0, round: 1, participants: 1, numExamples: 12 });
    const round = await operator.GET('/v1/tasks/{taskId}/rounds/{round}', { params: { path: { taskId, round: 1 } } });
    expect(round.data).toMatchObject({ round: 1, status: 'closed', resultVersion: 1, accepted: 1 });
  });
});
