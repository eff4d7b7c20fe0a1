/**
 * @module FedgeAdmin: the operator's side, for scripts and simulations: create a task from a
 * tfjs model, register clients, read rounds and versions.
 */

import * as tf from '@tensorflow/tfjs';
import type { EnrollmentKey, IdentityProvider, LiveRound, PrivacyOptions, SecureAggregationOptions, Task, TaskSummary } from './admin-types.ts';
import { FedgeError } from './errors.ts';
import { Http, type Logger, sleep } from './internal/http.ts';
import { inParallel } from './internal/parallel.ts';
import { readSavedModel } from './io.ts';
import type { UpdateEncoding } from './protocol/encoding.ts';
import type { ModelManifest, TrainingPlan } from './protocol/messages.ts';
import { concatTensors, encodeTensors, type WireTensor } from './protocol/safetensors.ts';

/**
 * Options of `new FedgeAdmin(options)`. `timeoutMs` defaults to 120,000, `maxRetries` to 2.
 *
 * @example
 * const admin = new FedgeAdmin({ baseUrl: 'http://127.0.0.1:8787', token: adminToken, timeoutMs: 300_000 });
 */
export interface FedgeAdminOptions {
  baseUrl: string;
  /** The admin token. */
  token: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  maxRetries?: number;
  logger?: Logger;
}

export interface RoundRules {
  clientsPerRound?: number;
  minClients?: number;
  deadlineSeconds?: number;
  overSelection?: number;
  maxExamplesPerClient?: number;
}

/**
 * Options of `createTask()`: the task's name, and optionally its round rules, local training plan
 * and aggregation strategy (the server's defaults for what is left out).
 *
 * @example
 * const task = await admin.createTask(model, {
 *   name: 'my task',
 *   rounds: { clientsPerRound: 10, deadlineSeconds: 600 },
 *   plan: { epochs: 1, batchSize: 32, learningRate: 0.01 },
 *   strategy: { name: 'fedavg' },
 * });
 */
export interface CreateTaskOptions {
  name: string;
  rounds?: RoundRules;
  plan?: Partial<TrainingPlan>;
  /** The aggregation strategy, e.g. `{ name: 'fedadam', serverLearningRate: 0.01 }` (default FedAvg). */
  strategy?: { name: string; [param: string]: number | string };
  /** Differential privacy (central DP-FedAvg or local DP); default none. */
  privacy?: PrivacyOptions;
  /** Secure aggregation (SecAgg+): the server learns only each round's sum; default none. */
  secureAggregation?: SecureAggregationOptions;
  /** How clients encode their updates: 'float32' (default), 'float16' (2× fewer bytes) or 'int8' (3.9× fewer, unbiased stochastic rounding). */
  updateEncoding?: UpdateEncoding;
  /** At most this many clients, registered or enrolled [10,000]: bounds self-enrollment. */
  maxClients?: number;
  /** Aggregator shards a round is spread over, 1–64, or 'auto' (default: one per 1,000 assignments of a round; 1 where one object must see the round). */
  shards?: number | 'auto';
  /**
   * Send the initial weights in chunks (POST /weight-uploads, one PUT per chunk, retried) rather
   * than inline in the create request. Default: above 32 MiB of weights (8M parameters), whose
   * base64 would come near Cloudflare's 100 MB request cap.
   */
  weightsInChunks?: boolean;
}

/** Weights above this many bytes go in chunks by default (`weightsInChunks`). */
const INLINE_WEIGHTS_BYTES = 32 * 1024 * 1024;

export interface CreatedTask {
  id: string;
  numParams: number;
  currentVersion: number;
  [key: string]: unknown;
}

export interface ClientCredentials {
  clientId: string;
  taskId: string;
  /** Shown once: the server keeps only its hash. */
  token: string;
  /** When the token stops working (ISO time), or null. */
  expiresAt: string | null;
}

export interface ClientInfo {
  clientId: string;
  label: string | null;
  status: 'active' | 'expired' | 'revoked';
  createdAt: string;
  expiresAt: string | null;
  rotatedAt: string | null;
  revokedAt: string | null;
}

export interface RoundInfo {
  round: number;
  status: 'open' | 'closing' | 'closed' | 'abandoned';
  baseVersion: number;
  resultVersion: number | null;
  assigned: number;
  accepted: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
  numExamples: number | null;
  metrics: Record<string, number> | null;
  openedAt: string;
  closedAt: string | null;
  closeReason: string | null;
  deadlineAt: string | null;
}

/**
 * The operator's side of fedge: create tasks from a tfjs model, register, rotate and revoke
 * clients, read rounds and versions. It needs the admin token, which must never ship inside an app.
 *
 * @example
 * const admin = new FedgeAdmin({ baseUrl: 'http://127.0.0.1:8787', token: adminToken });
 * const task = await admin.createTask(model, { name: 'my task' });
 * const { token } = await admin.registerClient(task.id, 'device 42'); // shown once: hand it to that client
 */
export class FedgeAdmin {
  private readonly http: Http;
  constructor(options: FedgeAdminOptions) {
    if (!options.baseUrl || !options.token) throw new FedgeError('invalid_options', 'FedgeAdmin needs baseUrl and token');
    const f = options.fetch ?? globalThis.fetch;
    this.http = new Http({
      baseUrl: `${options.baseUrl.replace(/\/+$/, '')}/v1`,
      token: options.token,
      fetch: (input, init) => f(input, init),
      timeoutMs: options.timeoutMs ?? 120_000,
      maxRetries: options.maxRetries ?? 2,
      logger: options.logger,
      onTraffic: undefined,
    });
  }

  /**
   * Creates a task whose version 0 is a model: an in-memory `tf.LayersModel` (its current
   * weights, in `model.weights` order, named by their original names), what `model.save` wrote
   * (`tf.io.ModelArtifacts`), or a tfjs IO handler that loads it (`tf.io.http(url)`,
   * `tf.io.browserFiles([json, bin])`). A saved model's training config (loss, SGD or Adam and its
   * learning rate) becomes the plan, under whatever `options.plan` sets; what fedge cannot train
   * (a GraphModel, quantized weights, several losses, another optimizer) is `unsupported_model`.
   *
   * @example
   * const task = await admin.createTask(tf.io.browserFiles([jsonFile, weightsFile]), { name: 'keyboard', rounds: { clientsPerRound: 50 } });
   */
  async createTask(source: tf.LayersModel | tf.io.ModelArtifacts | tf.io.IOHandler, options: CreateTaskOptions): Promise<CreatedTask> {
    let modelTopology: Record<string, unknown>;
    let tensors: WireTensor[];
    let plan: Partial<TrainingPlan> = {};
    if (isLayersModel(source)) {
      modelTopology = source.toJSON(undefined, false) as unknown as Record<string, unknown>;
      tensors = source.weights.map((w) => ({ name: w.originalName, shape: w.shape.map((d) => d ?? 0), data: w.read().dataSync() as Float32Array }));
    } else {
      const artifacts = 'load' in source && typeof source.load === 'function' ? await source.load() : (source as tf.io.ModelArtifacts);
      ({ modelTopology, tensors, plan } = readSavedModel(artifacts));
    }
    const numParams = tensors.reduce((a, t) => a + t.data.length, 0);
    const inChunks = options.weightsInChunks ?? numParams * 4 > INLINE_WEIGHTS_BYTES;
    const weights = inChunks ? { initialWeightsUpload: await this.uploadWeights(tensors, numParams) } : { initialWeights: base64(encodeTensors(tensors)) };
    return this.http.json<CreatedTask>({
      method: 'POST',
      path: '/tasks',
      json: {
        name: options.name,
        modelTopology,
        ...weights,
        rounds: options.rounds ?? {},
        plan: { ...plan, ...options.plan },
        ...(options.strategy ? { strategy: options.strategy } : {}),
        ...(options.privacy ? { privacy: options.privacy } : {}),
        ...(options.secureAggregation ? { secureAggregation: options.secureAggregation } : {}),
        ...(options.updateEncoding ? { updateEncoding: options.updateEncoding } : {}),
        ...(options.maxClients === undefined ? {} : { maxClients: options.maxClients }),
        ...(options.shards === undefined ? {} : { shards: options.shards }),
      },
      retry: false,
    });
  }

  /** Sends a model's weights (in `model.weights` order) as a weight upload, two chunks at a time; its id. */
  private async uploadWeights(tensors: readonly WireTensor[], numParams: number): Promise<string> {
    const upload = await this.http.json<{ uploadId: string; chunkParams: number; chunks: number }>({
      method: 'POST',
      path: '/weight-uploads',
      json: { numParams },
      retry: true,
    });
    const flat = concatTensors(tensors);
    const chunks = Array.from({ length: upload.chunks }, (_, k) => k);
    await inParallel(chunks, 2, async (k) => {
      const slice = flat.subarray(k * upload.chunkParams, Math.min(numParams, (k + 1) * upload.chunkParams));
      const body = new Uint8Array(slice.buffer, slice.byteOffset, slice.byteLength).slice();
      await this.http.json({ method: 'PUT', path: `/weight-uploads/${upload.uploadId}/chunks/${k}`, body, retry: true });
    });
    return upload.uploadId;
  }

  /**
   * A tfjs save target that creates a task: `await model.save(handler, { includeOptimizer: true })`
   * (so tfjs records the training config), then `handler.task`.
   *
   * @example
   * const handler = admin.createTaskHandler({ name: 'next-word' });
   * await model.save(handler, { includeOptimizer: true });
   * console.log(handler.task?.id);
   */
  createTaskHandler(options: CreateTaskOptions): tf.io.IOHandler & { readonly task: CreatedTask | null } {
    const handler = {
      task: null as CreatedTask | null,
      save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
        handler.task = await this.createTask(artifacts, options);
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
      },
    };
    return handler;
  }

  /**
   * Registers a client of the task; its token is returned once.
   *
   * @example
   * const { token } = await admin.registerClient(taskId, 'phone-42', { expiresInSeconds: 30 * 86_400 });
   */
  registerClient(taskId: string, label?: string, options: { expiresInSeconds?: number } = {}): Promise<ClientCredentials> {
    return this.http.json<ClientCredentials>({
      method: 'POST',
      path: `/tasks/${encodeURIComponent(taskId)}/clients`,
      json: { ...(label === undefined ? {} : { label }), ...options },
      retry: false,
    });
  }

  /** The task's clients, newest first, with their token status. */
  async listClients(taskId: string, limit = 50): Promise<ClientInfo[]> {
    return (
      await this.http.json<{ clients: ClientInfo[] }>({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}/clients?limit=${limit}`, retry: true })
    ).clients;
  }

  /** Revokes a client for good: its token stops working at its next request. Idempotent. */
  revokeClient(taskId: string, clientId: string): Promise<ClientInfo> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/clients/${encodeURIComponent(clientId)}/revoke`, retry: true });
  }

  /** Gives a client a new token (shown once); the old one stops working at once. */
  rotateClientToken(taskId: string, clientId: string): Promise<ClientCredentials> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/clients/${encodeURIComponent(clientId)}/token`, retry: false });
  }

  /** Tasks, newest first [50, at most 200]; `before` (the `createdAt` of the last one shown) pages back. */
  async listTasks(options: { limit?: number; before?: string | Date } = {}): Promise<TaskSummary[]> {
    return (await this.http.json<{ tasks: TaskSummary[] }>({ method: 'GET', path: `/tasks${page(options)}`, retry: true })).tasks;
  }

  /** The task's versions, newest first, each with its metrics and federated evaluation; `before` is a version number. */
  async listVersions(taskId: string, options: { limit?: number; before?: number } = {}): Promise<ModelManifest[]> {
    return (
      await this.http.json<{ versions: ModelManifest[] }>({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}/models${page(options)}`, retry: true })
    ).versions;
  }

  /** The task's configuration and live status: current version, the open round (see {@link LiveRound}). */
  getTask(taskId: string): Promise<Task> {
    return this.http.json({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}`, retry: true });
  }

  async listRounds(taskId: string, limit = 50): Promise<RoundInfo[]> {
    return (await this.http.json<{ rounds: RoundInfo[] }>({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}/rounds?limit=${limit}`, retry: true }))
      .rounds;
  }

  /** Records the operator's own evaluation of a version (e.g. on a held-out test set). */
  setServerMetrics(taskId: string, version: number, metrics: Record<string, number>): Promise<ModelManifest> {
    return this.http.json({ method: 'PUT', path: `/tasks/${encodeURIComponent(taskId)}/models/${version}/server-metrics`, json: { metrics }, retry: true });
  }

  getManifest(taskId: string, version: number | 'current'): Promise<ModelManifest> {
    return this.http.json({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}/models/${version}`, retry: true });
  }

  /**
   * Pauses the task: check-ins are told to come back later (`task_paused`), the open round's
   * deadline clock stops, and nothing accepted is lost. Idempotent.
   *
   * @example
   * await admin.pauseTask(taskId); // … maintenance …
   * await admin.resumeTask(taskId);
   */
  pauseTask(taskId: string): Promise<TaskLifecycle> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/pause`, retry: true });
  }

  /** Resumes a paused task: assignments again, the deadline clock restarts with the time that was left. Idempotent. */
  resumeTask(taskId: string): Promise<TaskLifecycle> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/resume`, retry: true });
  }

  /**
   * Deletes a stopped task whose last round has ended, and everything it holds (clients, keys,
   * rounds, every version and its weights); nothing is kept on the server. Download first what you keep.
   *
   * @example
   * await admin.stopTask(taskId);
   * await admin.waitForVersion(taskId, lastVersion); // its last round ends by its rules
   * const { deleted } = await admin.deleteTask(taskId);
   */
  deleteTask(taskId: string): Promise<{ id: string; deleted: { versions: number; rounds: number; clients: number; blobs: number } }> {
    return this.http.json({ method: 'DELETE', path: `/tasks/${encodeURIComponent(taskId)}`, retry: true });
  }

  /** Stops the task for good: no new assignments, the open round ends by its rules, no new rounds. Idempotent. */
  stopTask(taskId: string): Promise<TaskLifecycle> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/stop`, retry: true });
  }

  /**
   * Creates a publishable enrollment key: devices that have it enroll themselves
   * (`FedgeClient.enroll`), up to `maxClients` [1,000] of them (and the task's own cap).
   *
   * @example
   * const { key } = await admin.createEnrollmentKey(taskId, { label: 'ios app', maxClients: 10_000, clientTokenTtlSeconds: 90 * 86_400 });
   */
  createEnrollmentKey(
    taskId: string,
    options: { label?: string; maxClients?: number; expiresInSeconds?: number; clientTokenTtlSeconds?: number } = {},
  ): Promise<EnrollmentKey & { key: string }> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/enrollment-keys`, json: options, retry: false });
  }

  /** The task's enrollment keys with how many clients each enrolled. */
  async listEnrollmentKeys(taskId: string): Promise<EnrollmentKey[]> {
    return (await this.http.json<{ keys: EnrollmentKey[] }>({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}/enrollment-keys`, retry: true })).keys;
  }

  /** Stops new enrollments with the key; the clients it enrolled keep working. Idempotent. */
  revokeEnrollmentKey(taskId: string, keyId: string): Promise<EnrollmentKey> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/enrollment-keys/${encodeURIComponent(keyId)}/revoke`, retry: true });
  }

  /** Trusts an identity provider's ID tokens for enrollment (see {@link IdentityProvider}). */
  addIdentityProvider(
    taskId: string,
    provider: { issuer: string; audience: string; jwksUri: string; label?: string; clientTokenTtlSeconds?: number },
  ): Promise<IdentityProvider> {
    return this.http.json({ method: 'POST', path: `/tasks/${encodeURIComponent(taskId)}/identity-providers`, json: provider, retry: false });
  }

  async listIdentityProviders(taskId: string): Promise<IdentityProvider[]> {
    return (
      await this.http.json<{ providers: IdentityProvider[] }>({ method: 'GET', path: `/tasks/${encodeURIComponent(taskId)}/identity-providers`, retry: true })
    ).providers;
  }

  /** Stops trusting the provider for new enrollments; the clients it enrolled keep working. */
  revokeIdentityProvider(taskId: string, providerId: string): Promise<IdentityProvider> {
    return this.http.json({
      method: 'POST',
      path: `/tasks/${encodeURIComponent(taskId)}/identity-providers/${encodeURIComponent(providerId)}/revoke`,
      retry: true,
    });
  }

  /**
   * Waits until the task has published `version` (or a later one) and returns its manifest, polling
   * every `pollMs` [1,000]; throws `FedgeError` `timeout` after `timeoutMs` [10 minutes].
   *
   * @example
   * const v = await admin.waitForVersion(taskId, 3, { timeoutMs: 60_000 });
   */
  async waitForVersion(taskId: string, version: number, options: { timeoutMs?: number; pollMs?: number; signal?: AbortSignal } = {}): Promise<ModelManifest> {
    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    for (;;) {
      const current = await this.http.json<ModelManifest>({
        method: 'GET',
        path: `/tasks/${encodeURIComponent(taskId)}/models/current`,
        retry: true,
        signal: options.signal,
      });
      if (current.version >= version) return current.version === version ? current : this.getManifest(taskId, version);
      if (Date.now() >= deadline) throw new FedgeError('timeout', `task ${taskId} did not publish version ${version} in time (current: ${current.version})`);
      await sleep(Math.min(options.pollMs ?? 1_000, Math.max(0, deadline - Date.now())), options.signal);
    }
  }

  /**
   * Downloads a version: `safetensors` (one blob, what Python's safetensors reads) or `tfjs`
   * (`model.json` and `weights.bin`, what `tf.loadLayersModel` reads). Bytes, for the app to write.
   *
   * @example
   * const { files } = await admin.downloadVersion(taskId, 3, 'tfjs'); // files['model.json'], files['weights.bin']
   */
  async downloadVersion(taskId: string, version: number, format: 'safetensors' | 'tfjs' = 'safetensors'): Promise<{ files: Record<string, Uint8Array> }> {
    const base = `/tasks/${encodeURIComponent(taskId)}/models/${version}`;
    const bytes = async (path: string) => new Uint8Array(await (await this.http.request({ method: 'GET', path, retry: true })).arrayBuffer());
    if (format === 'safetensors') return { files: { [`${taskId}-v${version}.safetensors`]: await bytes(`${base}/weights`) } };
    const [model, weights] = await Promise.all([bytes(`${base}/model.json`), bytes(`${base}/weights.bin`)]);
    return { files: { 'model.json': model, 'weights.bin': weights } };
  }
}

/** A task's lifecycle state after pause, resume or stop. */
type TaskLifecycle = { id: string; status: TaskSummary['status']; currentRound: LiveRound | null };

function page(options: { limit?: number | undefined; before?: number | string | Date | undefined }): string {
  const q = new URLSearchParams();
  if (options.limit !== undefined) q.set('limit', String(options.limit));
  if (options.before !== undefined) q.set('before', options.before instanceof Date ? options.before.toISOString() : String(options.before));
  return q.size ? `?${q}` : '';
}

function isLayersModel(source: unknown): source is tf.LayersModel {
  return source instanceof tf.LayersModel;
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
