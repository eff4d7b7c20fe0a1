import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ADMIN, adminJson, api, type Client, checkIn, createTask, encodeUpdate, randomDelta, registerClient, stubOf, submit } from './helpers.ts';

async function status(res: Promise<Response>): Promise<[number, string | undefined]> {
  const r = await res;
  return [r.status, r.status === 200 || r.status === 304 ? undefined : (await r.json<any>()).error.code];
}

const download = (taskId: string, c: Client) => api(`/tasks/${taskId}/models/0/weights`, { headers: c.auth });

describe('client tokens', () => {
  it('revocation is effective at once, on every route, and keeps what the client already contributed', async () => {
    const { id } = await createTask({ clientsPerRound: 3 });
    const [a, b] = [await registerClient(id), await registerClient(id)];
    expect((await checkIn(id, a)).body.status).toBe('assigned');
    expect((await submit(id, a, 1, encodeUpdate(randomDelta(1), { baseVersion: 0, numExamples: 5 }))).status).toBe(200);
    expect(await status(download(id, b))).toEqual([200, undefined]); // b's credentials are now cached by the task's object
    const revoked = await adminJson(`/tasks/${id}/clients/${b.clientId}/revoke`, 'POST');
    expect(await revoked.json<any>()).toMatchObject({ clientId: b.clientId, status: 'revoked' });
    // The very next call of b fails, whichever route: the cached credentials were dropped with the revocation.
    expect(await status(download(id, b))).toEqual([401, 'token_revoked']);
    expect(await status(api(`/tasks/${id}/checkin`, { method: 'POST', headers: b.auth }))).toEqual([401, 'token_revoked']);
    expect(await status(api(`/tasks/${id}`, { headers: b.auth }))).toEqual([401, 'token_revoked']);
    const res = await api(`/tasks/${id}/models/current`, { headers: b.auth });
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="fedge", error="invalid_token", error_description="token_revoked"');
    // Revoking is for good (idempotent), and other clients are untouched.
    expect((await adminJson(`/tasks/${id}/clients/${b.clientId}/revoke`, 'POST')).status).toBe(200);
    expect(await status(download(id, a))).toEqual([200, undefined]);
    const listed = await (await adminJson(`/tasks/${id}/clients`, 'GET')).json<any>();
    expect(Object.fromEntries(listed.clients.map((c: any) => [c.clientId, c.status]))).toEqual({ [a.clientId]: 'active', [b.clientId]: 'revoked' });
    const round = await (await api(`/tasks/${id}`, { headers: ADMIN })).json<any>();
    expect(round.currentRound.accepted).toBe(1);
    expect(await status(adminJson(`/tasks/${id}/clients/c_nobody/revoke`, 'POST'))).toEqual([404, 'client_not_found']);
  });

  it('expires tokens at their expiry, and a rotation renews the lifetime', async () => {
    const { id } = await createTask();
    const res = await adminJson(`/tasks/${id}/clients`, 'POST', { label: 'phone', expiresInSeconds: 3600 });
    const created = await res.json<any>();
    expect(res.status).toBe(201);
    expect(Date.parse(created.expiresAt) - Date.now()).toBeGreaterThan(3590_000);
    const c: Client = { clientId: created.clientId, token: created.token, auth: { authorization: `Bearer ${created.token}` } };
    expect(await status(download(id, c))).toEqual([200, undefined]);
    // Time passes: the stored expiry moves into the past (and the object's cached row is dropped, as a day would).
    await env.DB.prepare('UPDATE clients SET expires_at = ? WHERE id = ?')
      .bind(Date.now() - 1, c.clientId)
      .run();
    await stubOf(id).forgetClient(c.clientId);
    expect(await status(download(id, c))).toEqual([401, 'token_expired']);
    const listed = await (await adminJson(`/tasks/${id}/clients`, 'GET')).json<any>();
    expect(listed.clients[0]).toMatchObject({ clientId: c.clientId, label: 'phone', status: 'expired' });
    // The operator rotates it: a new token with a fresh hour; the expired one stays dead.
    const rotated = await (await adminJson(`/tasks/${id}/clients/${c.clientId}/token`, 'POST')).json<any>();
    expect(Date.parse(rotated.expiresAt) - Date.now()).toBeGreaterThan(3590_000);
    expect(await status(api(`/tasks/${id}/models/0/weights`, { headers: { authorization: `Bearer ${rotated.token}` } }))).toEqual([200, undefined]);
    expect(await status(download(id, c))).toEqual([401, 'unauthorized']);
    expect(await status(adminJson(`/tasks/${id}/clients`, 'POST', { expiresInSeconds: 5 }))).toEqual([400, 'invalid_request']);
  });

  it('a client rotates its own token (not another one); the old token stops at once; a revoked client cannot rotate', async () => {
    const { id } = await createTask();
    const [a, b] = [await registerClient(id), await registerClient(id)];
    expect(await status(api(`/tasks/${id}/clients/${b.clientId}/token`, { method: 'POST', headers: a.auth }))).toEqual([403, 'forbidden']);
    const res = await api(`/tasks/${id}/clients/${a.clientId}/token`, { method: 'POST', headers: a.auth });
    const fresh = await res.json<any>();
    expect([res.status, fresh.clientId, fresh.expiresAt]).toEqual([200, a.clientId, null]);
    expect(fresh.token).not.toBe(a.token);
    expect(await status(download(id, a))).toEqual([401, 'unauthorized']);
    const a2: Client = { ...a, token: fresh.token, auth: { authorization: `Bearer ${fresh.token}` } };
    expect((await checkIn(id, a2)).body.status).toBe('assigned');
    await adminJson(`/tasks/${id}/clients/${b.clientId}/revoke`, 'POST');
    expect(await status(adminJson(`/tasks/${id}/clients/${b.clientId}/token`, 'POST'))).toEqual([409, 'client_revoked']);
  });

  it('uses 401 for no valid token and 403 for a valid token out of bounds', async () => {
    const { id } = await createTask();
    const { id: other } = await createTask();
    const c = await registerClient(id);
    const cases: [string, string, Record<string, string>, number, string][] = [
      ['GET', `/tasks/${id}`, {}, 401, 'unauthorized'],
      ['GET', `/tasks/${id}`, { authorization: 'Basic abc' }, 401, 'unauthorized'],
      ['GET', `/tasks/${id}`, { authorization: `Bearer ${c.clientId}.` }, 401, 'unauthorized'],
      ['GET', `/tasks/${id}`, { authorization: 'Bearer a_0000.secret' }, 401, 'unauthorized'],
      ['GET', '/tasks', c.auth, 403, 'forbidden'],
      ['POST', `/tasks/${id}/clients`, c.auth, 403, 'forbidden'],
      ['GET', `/tasks/${other}`, c.auth, 403, 'forbidden'],
      ['POST', `/tasks/${id}/checkin`, ADMIN, 403, 'forbidden'],
      ['GET', '/admin/tokens', c.auth, 403, 'forbidden'],
    ];
    for (const [method, path, headers, code, error] of cases) {
      const res = await api(path, { method, headers });
      const body = await res.json<any>();
      expect({ method, path, status: res.status, code: body.error.code }).toEqual({ method, path, status: code, code: error });
      expect(res.headers.get('www-authenticate') !== null).toBe(code === 401);
    }
  });
});

describe('rate limits', () => {
  it('limits each client to a burst of 60 then 2 requests a second (429 + Retry-After); other clients are unaffected', async () => {
    const { id } = await createTask();
    const [flooder, bystander] = [await registerClient(id), await registerClient(id)];
    const results: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 100; i++) {
      const res = await download(id, flooder);
      results.push(res.status);
      if (res.status === 429) {
        retryAfter ??= res.headers.get('retry-after');
        expect((await res.json<any>()).error.code).toBe('rate_limited');
      } else await res.arrayBuffer();
    }
    const ok = results.filter((s) => s === 200).length;
    // 60 at once, plus the 2/s earned back while the loop ran.
    expect(ok).toBeGreaterThanOrEqual(60);
    expect(ok).toBeLessThan(75);
    expect(results.slice(0, 60).every((s) => s === 200)).toBe(true);
    expect(results.filter((s) => s === 429).length).toBe(100 - ok);
    expect(retryAfter).toBe('1');
    expect(await status(download(id, bystander))).toEqual([200, undefined]);
  });

  it('gives a source 429 after 30 failed authentications in a window, before any lookup', async () => {
    const { id } = await createTask();
    const good = await registerClient(id);
    const from = (ip: string, auth: Record<string, string>) => api(`/tasks/${id}`, { headers: { 'cf-connecting-ip': ip, ...auth } });
    // The limiter counts in fixed 10 s windows: start early in one, so all 40 attempts fall in it.
    const left = 10_000 - (Date.now() % 10_000);
    if (left < 4_000) await new Promise((r) => setTimeout(r, left + 50));
    const codes: number[] = [];
    for (let i = 0; i < 40; i++) codes.push((await from('192.0.2.7', { authorization: `Bearer c_${i}.guess` })).status);
    expect(codes.slice(0, 30)).toEqual(Array(30).fill(401));
    expect(codes.slice(30)).toEqual(Array(10).fill(429));
    // The source stays blocked for the window (a valid token from it too); other sources are not.
    const blocked = await from('192.0.2.7', good.auth);
    expect([blocked.status, (await blocked.json<any>()).error.code, Number(blocked.headers.get('retry-after'))]).toEqual([
      429,
      'rate_limited',
      expect.any(Number),
    ]);
    expect((await from('192.0.2.8', good.auth)).status).toBe(200);
    expect((await from('192.0.2.7', ADMIN)).status).toBe(200); // the operator's secret is checked first
  });
});
