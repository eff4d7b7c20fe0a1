/** Operator token rotation. Its own file: it retires the ADMIN_TOKEN secret in this file's D1. */
import { describe, expect, it } from 'vitest';
import { ADMIN, api, createTask } from './helpers.ts';

function call(path: string, auth: Record<string, string>, method = 'GET', body?: unknown) {
  return api(path, { method, headers: { ...auth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
}

describe('operator tokens', () => {
  it('rotate the admin credential without a restart: the new token works, the retired secret stops at once', async () => {
    await createTask();
    const minted = await call('/admin/tokens', ADMIN, 'POST', { label: 'ci', expiresInSeconds: 86_400 });
    const ci = await minted.json<any>();
    expect(minted.status).toBe(201);
    expect(ci).toMatchObject({ label: 'ci', status: 'active', current: false });
    expect(ci.token).toMatch(/^a_[0-9a-f]{16}\./);
    const ciAuth = { authorization: `Bearer ${ci.token}` };
    expect((await call('/tasks', ciAuth)).status).toBe(200);

    // Rotation with the secret: a new token; the secret's value is retired.
    const rotated = await (await call('/admin/tokens', ADMIN, 'POST', { label: 'ops', retireCurrent: true })).json<any>();
    const ops = { authorization: `Bearer ${rotated.token}` };
    const refused = await call('/tasks', ADMIN);
    expect([refused.status, (await refused.json<any>()).error.code]).toEqual([401, 'token_revoked']);
    expect((await call('/tasks', ops)).status).toBe(200);
    const list = await (await call('/admin/tokens', ops)).json<any>();
    expect(list.tokens.map((t: any) => [t.id === 'env' ? 'env' : t.label, t.status, t.current])).toEqual([
      ['env', 'revoked', false],
      ['ops', 'active', true],
      ['ci', 'active', false],
    ]);

    // Revoking a minted token is immediate too; rotating a minted token retires that token.
    expect((await call(`/admin/tokens/${ci.id}/revoke`, ops, 'POST')).status).toBe(200);
    expect((await call('/tasks', ciAuth)).status).toBe(401);
    const next = await (await call('/admin/tokens', ops, 'POST', { retireCurrent: true })).json<any>();
    expect((await call('/tasks', ops)).status).toBe(401);
    expect((await call('/tasks', { authorization: `Bearer ${next.token}` })).status).toBe(200);
    expect((await call('/admin/tokens/a_none/revoke', { authorization: `Bearer ${next.token}` }, 'POST')).status).toBe(404);
    expect((await call('/admin/tokens', { authorization: `Bearer ${next.token}` }, 'POST', { expiresInSeconds: 1 })).status).toBe(400);
  });
});
