/**
 * @module Secure aggregation's client routes (see master/secagg-round.ts): one per message of the
 * four phases. Writes are idempotent (the same message again is accepted again); reads of a phase
 * not begun are held open up to `waitSeconds`, then answer `wait`.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { access, clientOf } from '../auth.ts';
import { newRouter } from '../router.ts';
import { errors, RoundParam, UpdateAckSchema } from '../schemas.ts';
import { aggregatorOf } from '../tasks-view.ts';
import { octetStream, refusal } from './participation.ts';

export const secaggApp = newRouter();

const base64 = z.string().max(1024).describe('Base64 (standard alphabet, padded)');
const KeysSchema = z
  .strictObject({
    curve: z.enum(['X25519', 'P-256']),
    cPublic: base64.describe('Public key for sealing shares (raw: 32 bytes X25519, 65 bytes P-256 uncompressed)'),
    sPublic: base64.describe('Public key for the pairwise masks'),
  })
  .openapi('SecAggKeys');
const RosterEntrySchema = KeysSchema.extend({ id: z.string() }).openapi('SecAggRosterEntry');
const SharesSchema = z.strictObject({ shares: z.array(z.strictObject({ to: z.string(), sealed: base64 })).max(10_000) }).openapi('SecAggShares');
const RevealSchema = z
  .strictObject({
    seedShares: z.record(z.string(), base64).describe("Shares of the surviving neighbours' self-mask seeds, by client id"),
    keyShares: z.record(z.string(), base64).describe("Shares of the dropped neighbours' mask keys, by client id"),
  })
  .openapi('SecAggReveal');
const wait = z.object({ status: z.literal('wait'), retryAfterSeconds: z.number().int() });
const RosterAnswerSchema = z
  .discriminatedUnion('status', [
    wait,
    z.object({ status: z.literal('ready'), k: z.number().int(), t: z.number().int(), neighbours: z.array(RosterEntrySchema) }),
  ])
  .openapi('SecAggRoster');
const InboxAnswerSchema = z
  .discriminatedUnion('status', [wait, z.object({ status: z.literal('ready'), shares: z.array(z.object({ from: z.string(), sealed: base64 })) })])
  .openapi('SecAggInbox');
const UnmaskAnswerSchema = z
  .discriminatedUnion('status', [wait, z.object({ status: z.literal('ready'), survivors: z.array(z.string()), dropped: z.array(z.string()) })])
  .openapi('SecAggUnmaskRequest');
const Ok = z.object({ status: z.literal('accepted') }).openapi('SecAggAccepted');
const WaitQuery = z.object({
  waitSeconds: z.coerce.number().int().min(0).max(20).default(10).describe('Hold the request open up to this long while the phase has not begun'),
});

const write = (path: string, operationId: string, summary: string, schema: z.ZodType) =>
  createRoute({
    method: 'post',
    path: `/tasks/{taskId}/rounds/{round}/secagg/${path}`,
    operationId,
    tags: ['secure aggregation'],
    summary,
    ...access.client,
    request: { params: RoundParam, body: { required: true, content: { 'application/json': { schema } } } },
    responses: {
      200: { description: 'Accepted (durably); the same message again is accepted again', content: { 'application/json': { schema: Ok } } },
      ...errors(400, 401, 403, 404, 409),
    },
  });

const read = (path: string, operationId: string, summary: string, schema: z.ZodType) =>
  createRoute({
    method: 'get',
    path: `/tasks/{taskId}/rounds/{round}/secagg/${path}`,
    operationId,
    tags: ['secure aggregation'],
    summary,
    ...access.client,
    request: { params: RoundParam, query: WaitQuery },
    responses: {
      200: { description: 'The phase’s data, or `wait` (come back after `retryAfterSeconds`)', content: { 'application/json': { schema } } },
      ...errors(401, 403, 404, 409),
    },
  });

function answer<T extends object>(r: T | { ok: false; code: never; message: string }): T {
  if ('ok' in r && r.ok === false) throw refusal(r as never);
  return r as T;
}

secaggApp.openapi(write('keys', 'secaggAdvertise', 'Phase 1: advertise this client’s two public keys for the round', KeysSchema), async (c) => {
  const { taskId, round } = c.req.valid('param');
  answer(await aggregatorOf(c.env, taskId).secaggKeys(clientOf(c).clientId, round, c.req.valid('json')));
  return c.json({ status: 'accepted' as const }, 200);
});

secaggApp.openapi(read('roster', 'secaggRoster', 'Phase 2: the neighbours’ public keys, k and t', RosterAnswerSchema), async (c) => {
  const { taskId, round } = c.req.valid('param');
  const r = answer(await aggregatorOf(c.env, taskId).secaggRoster(clientOf(c).clientId, round, c.req.valid('query').waitSeconds * 1000));
  return c.json(r as never, 200);
});

secaggApp.openapi(write('shares', 'secaggShare', 'Phase 2: one sealed pair of shares for each neighbour', SharesSchema), async (c) => {
  const { taskId, round } = c.req.valid('param');
  answer(await aggregatorOf(c.env, taskId).secaggShares(clientOf(c).clientId, round, c.req.valid('json')));
  return c.json({ status: 'accepted' as const }, 200);
});

secaggApp.openapi(read('inbox', 'secaggInbox', 'Phase 3: the shares the neighbours sealed for this client', InboxAnswerSchema), async (c) => {
  const { taskId, round } = c.req.valid('param');
  const r = answer(await aggregatorOf(c.env, taskId).secaggInbox(clientOf(c).clientId, round, c.req.valid('query').waitSeconds * 1000));
  return c.json(r as never, 200);
});

secaggApp.openapi(
  createRoute({
    method: 'put',
    path: '/tasks/{taskId}/rounds/{round}/secagg/masked',
    operationId: 'secaggMaskedInput',
    tags: ['secure aggregation'],
    summary: 'Phase 3: the masked input, (numParams + 1) little-endian 32-bit words (idempotent: the same bytes again return the same ack)',
    ...access.client,
    request: { params: RoundParam, body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: {
      200: { description: 'Accepted (durably)', content: { 'application/json': { schema: UpdateAckSchema } } },
      ...errors(400, 401, 403, 404, 408, 409, 413, 415),
    },
  }),
  async (c) => {
    const { taskId, round } = c.req.valid('param');
    const declared = octetStream(c, 'a masked input is sent as application/octet-stream');
    const r = await aggregatorOf(c.env, taskId).secaggMasked(clientOf(c).clientId, round, c.req.raw.body ?? new Blob([]).stream(), declared);
    if (!r.ok) throw refusal(r);
    if (r.replay) c.header('fedge-replayed', 'true');
    return c.json(r.ack, 200);
  },
);

secaggApp.openapi(read('unmask', 'secaggUnmaskRequest', 'Phase 4: which neighbours survived and which dropped', UnmaskAnswerSchema), async (c) => {
  const { taskId, round } = c.req.valid('param');
  const r = answer(await aggregatorOf(c.env, taskId).secaggUnmask(clientOf(c).clientId, round, c.req.valid('query').waitSeconds * 1000));
  return c.json(r as never, 200);
});

secaggApp.openapi(write('reveal', 'secaggReveal', 'Phase 4: the shares asked for (never both secrets of one neighbour)', RevealSchema), async (c) => {
  const { taskId, round } = c.req.valid('param');
  answer(await aggregatorOf(c.env, taskId).secaggReveal(clientOf(c).clientId, round, c.req.valid('json')));
  return c.json({ status: 'accepted' as const }, 200);
});
