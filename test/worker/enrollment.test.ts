/**
 * Self-enrollment by publishable key, in workerd with real D1 and Durable Objects: a device
 * enrolls and is an ordinary client; each bad key is refused with its own code and changes
 * nothing; the key's and the task's caps hold under concurrent enrollments; enrollments per
 * source are rate-limited; revoking a key stops new enrollments only.
 */
import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminJson, api, checkIn, createTask, encodeUpdate, randomDelta, submit } from './helpers.ts';

/** Each test enrolls from its own source address, so the per-source limits of one do not touch another. */
let nextSource = 1;
function source(): string {
  return `198.51.100.${nextSource++}`;
}

function enroll(taskId: string, key: string, from: string, label?: string): Promise<Response> {
  return SELF.fetch(`https://fedge.test/v1/tasks/${taskId}/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'cf-connecting-ip': from },
    body: JSON.stringify({ key, ...(label ? { label } : {}) }),
  });
}

async function newKey(taskId: string, body: Record<string, unknown> = {}): Promise<any> {
  const res = await adminJson(`/tasks/${taskId}/enrollment-keys`, 'POST', body);
  expect(res.status).toBe(201);
  return res.json<any>();
}

async function clientCount(taskId: string): Promise<number> {
  return (await (await adminJson(`/tasks/${taskId}/clients?limit=200`, 'GET')).json<any>()).clients.length;
}

const code = async (res: Response) => [res.status, res.status < 300 ? undefined : (await res.json<any>()).error.code];

describe('enrollment keys', () => {
  it('a device enrolls with the key and takes part like any client; the key lists what it enrolled', async () => {
    const { id } = await createTask({ clientsPerRound: 1 });
    const key = await newKey(id, { label: 'android app', maxClients: 5, clientTokenTtlSeconds: 3600 });
    expect(key).toMatchObject({ taskId: id, label: 'android app', status: 'active', maxClients: 5, enrolled: 0, clientTokenTtlSeconds: 3600 });
    expect(key.key).toMatch(/^ek_[0-9a-f]{20}\.[A-Za-z0-9_-]{43}$/);

    const res = await enroll(id, key.key, source(), 'pixel 9');
    expect(res.status).toBe(201);
    const creds = await res.json<any>();
    expect(creds).toMatchObject({ taskId: id, clientId: expect.stringMatching(/^c_/), token: expect.stringMatching(/^c_/) });
    const expiresIn = Date.parse(creds.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(3590_000);
    expect(expiresIn).toBeLessThanOrEqual(3600_000);

    const client = { clientId: creds.clientId, token: creds.token, auth: { authorization: `Bearer ${creds.token}` } };
    expect((await checkIn(id, client)).body.status).toBe('assigned');
    expect((await submit(id, client, 1, encodeUpdate(randomDelta(3), { baseVersion: 0, numExamples: 7 }))).status).toBe(200);

    const listed = await (await adminJson(`/tasks/${id}/clients`, 'GET')).json<any>();
    expect(listed.clients).toEqual([expect.objectContaining({ clientId: creds.clientId, label: 'pixel 9', enrollmentKeyId: key.id, status: 'active' })]);
    const keys = await (await adminJson(`/tasks/${id}/enrollment-keys`, 'GET')).json<any>();
    expect(keys.keys).toEqual([expect.objectContaining({ id: key.id, enrolled: 1, status: 'active' })]);
    expect(keys.keys[0].key).toBeUndefined(); // shown once
  });

  it('refuses each bad key with its own code, enrolling nobody', async () => {
    const { id } = await createTask();
    const { id: other } = await createTask();
    const key = await newKey(id);
    const otherKey = await newKey(other);
    const expiring = await newKey(id, { expiresInSeconds: 60 });
    const from = source();
    expect(await code(await enroll(id, 'not-a-key', from))).toEqual([401, 'enrollment_key_invalid']);
    expect(await code(await enroll(id, `${key.id}.wrongsecret`, from))).toEqual([401, 'enrollment_key_invalid']);
    expect(await code(await enroll(id, otherKey.key, from))).toEqual([401, 'enrollment_key_invalid']);
    expect(await code(await enroll(id, 'ek_00000000000000000000.x', from))).toEqual([401, 'enrollment_key_invalid']);
    expect(await code(await enroll('00000000-0000-4000-8000-000000000000', key.key, from))).toEqual([404, 'task_not_found']);
    const bad = await SELF.fetch(`https://fedge.test/v1/tasks/${id}/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'cf-connecting-ip': from },
      body: JSON.stringify({ key: key.key, extra: 1 }),
    });
    expect(await code(bad)).toEqual([400, 'invalid_request']);
    // Expired: move the key's expiry into the past as time would.
    await env.DB.prepare('UPDATE enrollment_keys SET expires_at = ? WHERE id = ?')
      .bind(Date.now() - 1000, expiring.id)
      .run();
    expect(await code(await enroll(id, expiring.key, from))).toEqual([401, 'enrollment_key_expired']);
    // Revoked: no new enrollments.
    const revoked = await adminJson(`/tasks/${id}/enrollment-keys/${key.id}/revoke`, 'POST');
    expect(await revoked.json<any>()).toMatchObject({ id: key.id, status: 'revoked', enrolled: 0 });
    expect(await code(await enroll(id, key.key, from))).toEqual([401, 'enrollment_key_revoked']);
    expect(await clientCount(id)).toBe(0);
    expect(await clientCount(other)).toBe(0);
    // A client token is not an enrollment key, and an enrollment key is not a token.
    expect(await code(await api(`/tasks/${id}/checkin`, { method: 'POST', headers: { authorization: `Bearer ${otherKey.key}` } }))).toEqual([
      401,
      'unauthorized',
    ]);
    expect(await code(await adminJson(`/tasks/${id}/enrollment-keys/ek_nope/revoke`, 'POST'))).toEqual([404, 'not_found']);
  });

  it('answers an app page on any origin (CORS), while key management stays operator-only', async () => {
    const preflight = (path: string) =>
      SELF.fetch(`https://fedge.test/v1${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    expect((await preflight('/tasks/t/enroll')).headers.get('access-control-allow-origin')).toBe('*');
    expect((await preflight('/tasks/t/enrollment-keys')).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('revoking a key stops new enrollments, not the clients it enrolled', async () => {
    const { id } = await createTask();
    const key = await newKey(id);
    const creds = await (await enroll(id, key.key, source())).json<any>();
    await adminJson(`/tasks/${id}/enrollment-keys/${key.id}/revoke`, 'POST');
    expect(await code(await enroll(id, key.key, source()))).toEqual([401, 'enrollment_key_revoked']);
    expect((await api(`/tasks/${id}/models/0/weights`, { headers: { authorization: `Bearer ${creds.token}` } })).status).toBe(200);
    // …and revoking the client works as for any client.
    await adminJson(`/tasks/${id}/clients/${creds.clientId}/revoke`, 'POST');
    expect(await code(await api(`/tasks/${id}/models/0/weights`, { headers: { authorization: `Bearer ${creds.token}` } }))).toEqual([401, 'token_revoked']);
  });

  it("holds the key's cap and the task's cap under concurrent enrollments", async () => {
    const { id } = await createTask({}, undefined, { maxClients: 6 });
    const small = await newKey(id, { maxClients: 3 });
    const big = await newKey(id, { maxClients: 100 });
    // 10 devices at once on a key for 3: exactly 3 get in.
    const first = await Promise.all(Array.from({ length: 10 }, () => enroll(id, small.key, source())));
    const statuses = await Promise.all(first.map(code));
    expect(statuses.filter(([s]) => s === 201)).toHaveLength(3);
    expect(statuses.filter(([s, c]) => s === 409 && c === 'enrollment_limit_reached')).toHaveLength(7);
    // The task's cap (6) binds the big key: 3 more, then no more.
    const second = await Promise.all(Array.from({ length: 8 }, () => enroll(id, big.key, source())));
    const more = await Promise.all(second.map(code));
    expect(more.filter(([s]) => s === 201)).toHaveLength(3);
    expect(more.filter(([s, c]) => s === 409 && c === 'enrollment_limit_reached')).toHaveLength(5);
    expect(await clientCount(id)).toBe(6);
    const refused = await (await enroll(id, big.key, source())).json<any>();
    expect(refused.error.message).toMatch(/holds its 6 clients/);
    expect((await (await api(`/tasks/${id}`, { headers: { authorization: 'Bearer test-admin-token' } })).json<any>()).maxClients).toBe(6);
  });

  it('rate-limits enrollments per source (20 a minute), other sources unaffected', async () => {
    const { id } = await createTask();
    const key = await newKey(id, { maxClients: 1000 });
    const from = source();
    const results: (string | number | undefined)[][] = [];
    for (let i = 0; i < 22; i++) results.push(await code(await enroll(id, key.key, from)));
    expect(results.slice(0, 20).every(([s]) => s === 201)).toBe(true);
    expect(results.slice(20)).toEqual([
      [429, 'rate_limited'],
      [429, 'rate_limited'],
    ]);
    expect((await enroll(id, key.key, source())).status).toBe(201);
    expect(await clientCount(id)).toBe(21);
  });

  it('counts wrong keys as failed authentications of the source (429 after 30 in 10 s)', async () => {
    const { id } = await createTask();
    const key = await newKey(id);
    const from = source();
    const codes: unknown[] = [];
    for (let i = 0; i < 32; i++) codes.push((await code(await enroll(id, `${key.id}.guess${i}`, from)))[1]);
    expect(codes.slice(0, 30).every((c) => c === 'enrollment_key_invalid')).toBe(true);
    expect(codes.slice(30)).toEqual(['rate_limited', 'rate_limited']);
    // Even the right key is refused from that source for the rest of the window.
    expect(await code(await enroll(id, key.key, from))).toEqual([429, 'rate_limited']);
    expect((await enroll(id, key.key, source())).status).toBe(201);
  });
});
