/**
 * @module The dashboard's view of the edge API: same-origin `fetch` with the admin token as a
 * bearer header (never a cookie, never in a URL), errors as {@link ApiError} with the server's
 * stable code. Response types come from the server's own zod schemas (type-only imports).
 */
import type { z } from '@hono/zod-openapi';
import type { ClientSchema, ModelManifestSchema, RoundSchema, TaskSchema, TaskSummarySchema } from '../../src/api/schemas.ts';

export type TaskSummary = z.infer<typeof TaskSummarySchema>;
export type Task = z.infer<typeof TaskSchema>;
export type LiveRound = NonNullable<Task['currentRound']>;
export type Version = z.infer<typeof ModelManifestSchema>;
export type Round = z.infer<typeof RoundSchema>;
export type Client = z.infer<typeof ClientSchema>;
export type LifecycleAction = 'pause' | 'resume' | 'stop';

/** A refused or failed call: `status` 0 when the platform could not be reached. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
  /** The token itself was refused (missing, wrong, revoked, expired or not an operator's). */
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

const enc = encodeURIComponent;

export class Api {
  private readonly token: string;
  private readonly base: string;
  constructor(token: string, base = '/v1') {
    this.token = token;
    this.base = base;
  }

  async request(method: 'GET' | 'POST', path: string): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers: { authorization: `Bearer ${this.token}` }, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'unavailable', `cannot reach the platform (${e instanceof Error ? e.message : String(e)})`);
    }
    if (res.ok) return res;
    let code = 'http_error';
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // not a JSON error body: keep the status line
    }
    throw new ApiError(res.status, code, message);
  }

  private async json<T>(method: 'GET' | 'POST', path: string): Promise<T> {
    return (await (await this.request(method, path)).json()) as T;
  }

  async tasks(limit = 200): Promise<TaskSummary[]> {
    return (await this.json<{ tasks: TaskSummary[] }>('GET', `/tasks?limit=${limit}`)).tasks;
  }
  task(id: string): Promise<Task> {
    return this.json('GET', `/tasks/${enc(id)}`);
  }
  /** Versions, newest first (at most `limit`). */
  async versions(id: string, limit = 200): Promise<Version[]> {
    return (await this.json<{ versions: Version[] }>('GET', `/tasks/${enc(id)}/models?limit=${limit}`)).versions;
  }
  async rounds(id: string, limit = 20): Promise<Round[]> {
    return (await this.json<{ rounds: Round[] }>('GET', `/tasks/${enc(id)}/rounds?limit=${limit}`)).rounds;
  }
  async clients(id: string, limit = 200): Promise<Client[]> {
    return (await this.json<{ clients: Client[] }>('GET', `/tasks/${enc(id)}/clients?limit=${limit}`)).clients;
  }
  revokeClient(id: string, clientId: string): Promise<Client> {
    return this.json('POST', `/tasks/${enc(id)}/clients/${enc(clientId)}/revoke`);
  }
  lifecycle(id: string, action: LifecycleAction): Promise<Pick<Task, 'id' | 'status' | 'currentRound'>> {
    return this.json('POST', `/tasks/${enc(id)}/${action}`);
  }
  /** A version's files as the API serves them: safetensors (one blob) or tfjs (model.json + weights.bin). */
  async download(id: string, version: number, format: 'safetensors' | 'tfjs'): Promise<{ name: string; blob: Blob }[]> {
    const at = `/tasks/${enc(id)}/models/${version}`;
    const get = async (path: string) => (await this.request('GET', path)).blob();
    if (format === 'safetensors') return [{ name: `${id}-v${version}.safetensors`, blob: await get(`${at}/weights`) }];
    const [model, weights] = await Promise.all([get(`${at}/model.json`), get(`${at}/weights.bin`)]);
    return [
      { name: 'model.json', blob: model },
      { name: 'weights.bin', blob: weights },
    ];
  }
}
