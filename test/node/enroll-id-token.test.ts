/**
 * Enrollment with the app's own sign-in, against the real aggregator (wrangler dev): a local
 * server plays the identity provider (its JWKS over HTTP, tokens signed with jose), the aggregator
 * fetches and verifies. A signed-in user enrolls, trains a round with the SDK, and enrolling again
 * gives the same client; every bad token class is refused with its own code and enrolls nobody.
 */
import { createServer, type Server } from 'node:http';
import * as tf from '@tensorflow/tfjs';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FedgeAdmin, FedgeClient } from '../../client-sdk/src/index.ts';
import { argmaxData, argmaxTask } from '../sim/synthetic.ts';
import { useWasmBackend } from '../sim/tf-backend.ts';

const url = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');
const admin = new FedgeAdmin({ baseUrl: url, token: adminToken });
const ISSUER = 'https://login.example-app.test/';
const AUDIENCE = 'example-app-client-id';

let jwks: Server;
let jwksUri: string;
let signingKey: CryptoKey;
let strangerKey: CryptoKey;
let taskId: string;

beforeAll(async () => {
  await useWasmBackend();
  const pair = await generateKeyPair('RS256');
  signingKey = pair.privateKey;
  strangerKey = (await generateKeyPair('RS256')).privateKey;
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' };
  jwks = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  const address = jwks.address();
  jwksUri = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/.well-known/jwks.json`;

  taskId = await argmaxTask(admin, 'sign-in enrollment');
  const provider = await admin.addIdentityProvider(taskId, { issuer: ISSUER, audience: AUDIENCE, jwksUri, label: 'example app sign-in' });
  expect(provider).toMatchObject({ issuer: ISSUER, audience: AUDIENCE, jwksUri, status: 'active' });
}, 60_000);

afterAll(() => new Promise<void>((r) => jwks.close(() => r())));

function operator(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${url}/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function enroll(idToken: string): Promise<Response> {
  return fetch(`${url}/v1/tasks/${taskId}/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ idToken }) });
}

interface TokenOptions {
  sub?: string;
  iss?: string;
  aud?: string;
  expiresIn?: string | number;
  key?: CryptoKey;
  kid?: string;
}
function idToken(o: TokenOptions = {}): Promise<string> {
  return new SignJWT({ email: 'ada@example.test' })
    .setProtectedHeader({ alg: 'RS256', kid: o.kid ?? 'key-1' })
    .setSubject(o.sub ?? 'user-ada')
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(o.expiresIn ?? '10m')
    .sign(o.key ?? signingKey);
}

async function refusal(res: Response): Promise<[number, string]> {
  return [res.status, (await res.json()).error.code];
}

async function clients(): Promise<{ clientId: string; status: string }[]> {
  return (await (await operator('GET', `/tasks/${taskId}/clients`)).json()).clients;
}

describe('enrollment with an ID token', () => {
  it('a signed-in user enrolls and trains a round; enrolling again is the same client with a new token', async () => {
    const first = await enroll(await idToken());
    expect(first.status).toBe(201);
    const creds = await first.json();
    expect(creds).toMatchObject({ taskId, clientId: expect.stringMatching(/^c_[0-9a-f]{32}$/), expiresAt: null });

    const client = new FedgeClient({ baseUrl: url, taskId, token: creds.token });
    const { xs, ys } = argmaxData(24, 9);
    const result = await client.participate({ xs, ys });
    tf.dispose([xs, ys]);
    expect(result.status).toBe('accepted');
    if (result.status === 'accepted') expect(result.ack.clientId).toBe(creds.clientId);

    // Same user, new session: the same client, a fresh token; the old one stops at once.
    // (through the SDK this time: FedgeClient.enroll with the ID token)
    const { client: same, credentials: renewed } = await FedgeClient.enroll({ baseUrl: url, taskId, idToken: await idToken() });
    expect(renewed).toMatchObject({ clientId: creds.clientId, created: false });
    expect((await same.getManifest('current')).version).toBe(1);
    expect(renewed.token).not.toBe(creds.token);
    const old = await fetch(`${url}/v1/tasks/${taskId}/models/current`, { headers: { authorization: `Bearer ${creds.token}` } });
    expect(await refusal(old)).toEqual([401, 'unauthorized']); // as after any rotation: its secret is no longer known
    // Another user is another client.
    const bob = await (await enroll(await idToken({ sub: 'user-bob' }))).json();
    expect(bob.clientId).not.toBe(creds.clientId);
    const listed = await clients();
    expect(listed.map((c) => c.clientId).sort()).toEqual([creds.clientId, bob.clientId].sort());
  });

  it('refuses every bad token class with its own code, and enrolls nobody', async () => {
    const before = (await clients()).length;
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'user-eve', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 })}.`;
    const cases: [string, string, string][] = [
      ['expired', await idToken({ expiresIn: Math.floor(Date.now() / 1000) - 120 }), 'id_token_expired'],
      ['wrong audience', await idToken({ aud: 'another-app' }), 'id_token_wrong_audience'],
      ['wrong issuer', await idToken({ iss: 'https://evil.example/' }), 'id_token_wrong_issuer'],
      ['unsigned (alg none)', unsigned, 'id_token_unsigned'],
      ['signed by another key (same kid)', await idToken({ key: strangerKey }), 'id_token_bad_signature'],
      ['signed by an unknown key (unknown kid)', await idToken({ key: strangerKey, kid: 'key-9' }), 'id_token_bad_signature'],
      ['not a JWT', 'hello.world', 'id_token_invalid'],
      [
        'a tampered payload',
        (await idToken()).replace(/\.([^.]+)\./, (_, p) => `.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'user-mallory' })}.`),
        'id_token_bad_signature',
      ],
    ];
    for (const [what, token, code] of cases) expect(await refusal(await enroll(token)), what).toEqual([401, code]);
    expect((await clients()).length).toBe(before);
  });

  it('stops trusting a revoked provider, and keeps a revoked user out', async () => {
    const carol = await (await enroll(await idToken({ sub: 'user-carol' }))).json();
    expect((await operator('POST', `/tasks/${taskId}/clients/${carol.clientId}/revoke`)).status).toBe(200);
    expect(await refusal(await enroll(await idToken({ sub: 'user-carol' })))).toEqual([409, 'client_revoked']);

    const providers = (await (await operator('GET', `/tasks/${taskId}/identity-providers`)).json()).providers;
    expect(providers).toEqual([expect.objectContaining({ issuer: ISSUER, audience: AUDIENCE, jwksUri, status: 'active' })]);
    expect((await operator('POST', `/tasks/${taskId}/identity-providers/${providers[0].id}/revoke`)).status).toBe(200);
    expect(await refusal(await enroll(await idToken({ sub: 'user-dave' })))).toEqual([401, 'id_token_wrong_issuer']);
    // A JWKS URI over plain http elsewhere than localhost is refused at once.
    const insecure = await operator('POST', `/tasks/${taskId}/identity-providers`, {
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: 'http://keys.example/jwks.json',
    });
    expect(await refusal(insecure)).toEqual([400, 'invalid_request']);
  });
});
