/**
 * @module FedgeClient: one app's participation in one federated task.
 *
 * check in → download the current model (cached by version) → train locally → submit Δ.
 * Each step is usable on its own; `participate()` does a whole round in one call.
 */
import type * as tf from '@tensorflow/tfjs';
import { ChunkedUploads } from './chunked-upload.ts';
import { type EnrolledCredentials, type EnrollOptions, requestEnrollment } from './enroll.ts';
import { FedgeError, LateUpdateError, RoundAbandonedError } from './errors.ts';
import { Http, type Logger, sleep } from './internal/http.ts';
import { versionLoadHandler } from './io.ts';
import { privatizeUpdate, type UpdatePrivacy } from './privacy.ts';
import type { ChunkedUpload } from './protocol/chunked.ts';
import { encodeUpdate, type UpdateEncoding } from './protocol/encoding.ts';
import type { CheckInResponse, ClientPrivacy, ModelManifest, TensorManifestEntry, TrainingPlan, UpdateAck } from './protocol/messages.ts';
import { UPDATE_META } from './protocol/messages.ts';
import { concatTensors, decodeTensors, encodeRawTensors } from './protocol/safetensors.ts';
import { quantizedClipNorm } from './protocol/secagg/quantize.ts';
import { SecureRound, type SecureRoundReport } from './secure-aggregation.ts';
import { buildModel, evaluateLocally, type TrainingCallbacks, type TrainingData, type TrainResult, trainLocally } from './training.ts';

/**
 * Options of `new FedgeClient(options)`: the aggregator, the task and the client's token are
 * required; the rest tune timeouts, retries, caching and observation.
 *
 * @example
 * const client = new FedgeClient({ baseUrl: 'https://fedge.example.com', taskId, token, timeoutMs: 30_000, maxRetries: 3, cacheVersions: 1 });
 */
export interface FedgeClientOptions {
  /** The aggregator's URL, e.g. `http://127.0.0.1:8787` (the API is under `/v1`). */
  baseUrl: string;
  taskId: string;
  /** The client token from `POST /v1/tasks/{taskId}/clients`. */
  token: string;
  /** A `fetch` to use instead of the global one (tests, instrumentation, custom agents). */
  fetch?: typeof fetch;
  /** Per-request timeout, ms. Default 60,000. */
  timeoutMs?: number;
  /** Retries of a failed request (network errors, 408, 429, 5xx), each after backoff with jitter or Retry-After. Default 2. */
  maxRetries?: number;
  logger?: Logger;
  /** Model versions whose weights are kept in memory, so an unchanged model is never downloaded twice. Default 2. */
  cacheVersions?: number;
  /** Observes the bytes of every request and response body. */
  onTraffic?: (sent: number, received: number) => void;
}

/**
 * An assignment to the open round: what `waitForAssignment()` resolves to, and `checkIn()` when it assigns.
 *
 * @example
 * const { round, baseVersion, deadlineAt, plan } = await client.waitForAssignment({ maxWaitMs: 60_000 });
 */
export type Assignment = Extract<CheckInResponse, { status: 'assigned' }>;

/**
 * What the SDK knows of the task: immutable after creation.
 *
 * @example
 * const { modelTopology, tensors, plan } = await client.getTaskModel();
 */
export interface TaskModel {
  modelTopology: Record<string, unknown>;
  tensors: TensorManifestEntry[];
  plan: TrainingPlan;
}

/**
 * A version's manifest and its weights, as `getWeights()` resolves them.
 *
 * @example
 * const { manifest, flat } = await client.getWeights(assignment.baseVersion);
 * const model = await buildModel(task.modelTopology, manifest.tensors, flat);
 */
export interface ModelWeights {
  manifest: ModelManifest;
  /** All weights concatenated in the task's tensor order. */
  flat: Float32Array;
}

/**
 * The arguments of `submitUpdate()`: Δ trained from `baseVersion` for the assigned `round`.
 *
 * @example
 * const { delta, numExamples, metrics } = await trainLocally(model, flat, { xs, ys }, assignment.plan);
 * const ack = await client.submitUpdate({ round: assignment.round, baseVersion: assignment.baseVersion, delta, numExamples, metrics });
 */
export interface SubmitArgs {
  round: number;
  baseVersion: number;
  delta: Float32Array;
  numExamples: number;
  metrics?: Record<string, number>;
  /**
   * What a DP task asks of this update (the assignment's `privacy`). Default: what this client's
   * check-in for `round` was told, so an update of a DP task is never sent un-clipped or un-noised.
   */
  privacy?: ClientPrivacy | undefined;
  /**
   * How to encode Δ (the assignment's `updateEncoding`). Default: what this client's check-in for
   * `round` was told, else float32.
   */
  encoding?: UpdateEncoding | undefined;
  /**
   * For a model split into parameter ranges (the assignment's `chunked`): send Δ in these chunks,
   * then commit it. Default: what this client's check-in for `round` was told, else one request.
   */
  chunked?: ChunkedUpload | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Options of `participate()`: cancellation, how long to wait for an assignment, and progress
 * callbacks (its steps, and the training callbacks).
 *
 * @example
 * const result = await client.participate({ xs, ys }, {
 *   signal: controller.signal,
 *   onStep: (step, detail) => console.log(step, detail),
 *   onEpochEnd: ({ epoch, epochs, logs }) => console.log(`epoch ${epoch + 1}/${epochs}: loss ${logs.loss}`),
 * });
 */
export interface ParticipateOptions extends TrainingCallbacks {
  signal?: AbortSignal | undefined;
  /** Give up waiting for an assignment after this long, ms. Default: wait as long as the server says. */
  maxWaitMs?: number;
  /** Called at each step, for progress UIs. */
  onStep?: (step: 'checking_in' | 'waiting' | 'downloading' | 'training' | 'submitting', detail?: Record<string, unknown>) => void;
}

/**
 * What `participate()` resolves to: `accepted` (the update counts), `late` (the round closed
 * first) or `abandoned` (the round ended below its minimum); only `accepted` has an `ack`.
 *
 * @example
 * const result = await client.participate({ xs, ys });
 * if (result.status === 'accepted') console.log(`counted in round ${result.ack.round}`);
 * else console.log(`not counted (${result.status}): participate again for the next round`);
 */
export type ParticipationResult =
  /** `privacy`: what a DP task's clipping (and local noise, with its ε) did to the update; null without DP. */
  /** `secureAggregation`: the round's k, t and quantization when the task runs secure aggregation; null otherwise. */
  | {
      status: 'accepted';
      ack: UpdateAck;
      train: Omit<TrainResult, 'delta'>;
      assignment: Assignment;
      privacy: UpdatePrivacy | null;
      secureAggregation: SecureRoundReport | null;
    }
  | { status: 'late'; assignment: Assignment; train: Omit<TrainResult, 'delta'> }
  /** The round was abandoned at its deadline (too few updates): this update was discarded. */
  | { status: 'abandoned'; assignment: Assignment; train: Omit<TrainResult, 'delta'> };

/**
 * A client of one fedge task.
 *
 * @example
 * const client = new FedgeClient({ baseUrl: 'http://127.0.0.1:8787', taskId, token });
 * const result = await client.participate({ xs, ys });   // xs, ys: the app's own tensors
 */
export class FedgeClient {
  readonly taskId: string;
  private readonly http: Http;
  private readonly cacheVersions: number;
  private readonly cache = new Map<number, Promise<ModelWeights>>();
  private task: Promise<TaskModel> | null = null;
  /** What DP tasks asked of each assigned round's update (recent rounds only). */
  private readonly roundPrivacy = new Map<number, ClientPrivacy>();
  private readonly roundEncoding = new Map<number, UpdateEncoding>();
  private readonly roundChunked = new Map<number, ChunkedUpload>();
  /** Chunked updates under way (models split into parameter ranges): what each round's server already holds. */
  private readonly chunks: ChunkedUploads;

  constructor(options: FedgeClientOptions) {
    if (!options.baseUrl || !options.taskId || !options.token) throw new FedgeError('invalid_options', 'FedgeClient needs baseUrl, taskId and token');
    this.taskId = options.taskId;
    this.cacheVersions = Math.max(1, options.cacheVersions ?? 2);
    const f = options.fetch ?? globalThis.fetch;
    this.http = new Http({
      baseUrl: `${options.baseUrl.replace(/\/+$/, '')}/v1`,
      token: options.token,
      fetch: (input, init) => f(input, init),
      timeoutMs: options.timeoutMs ?? 60_000,
      maxRetries: options.maxRetries ?? 2,
      logger: options.logger,
      onTraffic: options.onTraffic,
    });
    this.chunks = new ChunkedUploads(this.http, this.base);
  }

  /**
   * Enrolls this device as a new client of the task, with the app's enrollment key or an ID token
   * of its sign-in, and returns a client using the new token. The token is shown once: store it
   * (see {@link EnrolledCredentials}) and build the client with it next time.
   *
   * @example
   * const { client, credentials } = await FedgeClient.enroll({ baseUrl, taskId, enrollmentKey: 'ek_5d….…' });
   * await SecureStore.setItemAsync('fedge-token', credentials.token);
   * await client.participate({ xs, ys });
   */
  static async enroll(
    options: EnrollOptions & Omit<FedgeClientOptions, 'token' | 'taskId' | 'baseUrl'>,
  ): Promise<{ client: FedgeClient; credentials: EnrolledCredentials }> {
    const credentials = await requestEnrollment(options);
    const { enrollmentKey: _key, idToken: _idToken, label: _label, ...clientOptions } = options;
    return { client: new FedgeClient({ ...clientOptions, token: credentials.token }), credentials };
  }

  private get base(): string {
    return `/tasks/${encodeURIComponent(this.taskId)}`;
  }

  /**
   * Replaces this client's token with a new one (the old one stops working at once) and uses it
   * from now on. Store the returned token where the app keeps its credentials: it is shown once.
   *
   * @example
   * const { token, expiresAt } = await client.rotateToken();
   * await secureStorage.set('fedge-token', token);
   */
  async rotateToken(options: { signal?: AbortSignal | undefined } = {}): Promise<{ token: string; expiresAt: string | null }> {
    const clientId = this.clientId;
    const r = await this.http.json<{ token: string; expiresAt: string | null }>({
      method: 'POST',
      path: `${this.base}/clients/${encodeURIComponent(clientId)}/token`,
      retry: false,
      signal: options.signal,
    });
    this.http.options.token = r.token;
    return { token: r.token, expiresAt: r.expiresAt };
  }

  /** This client's id (the part of its token before the dot). */
  get clientId(): string {
    return this.http.options.token.slice(0, this.http.options.token.indexOf('.'));
  }

  /** Asks to join the open round: an assignment, or when to come back (`retryAfterSeconds`). */
  async checkIn(options: { signal?: AbortSignal | undefined } = {}): Promise<CheckInResponse> {
    const r = await this.http.json<CheckInResponse>({ method: 'POST', path: `${this.base}/checkin`, retry: true, signal: options.signal });
    if (r.status === 'assigned' && r.privacy) {
      this.roundPrivacy.set(r.round, r.privacy);
      for (const round of this.roundPrivacy.keys()) if (round < r.round - 8) this.roundPrivacy.delete(round);
    }
    if (r.status === 'assigned' && r.updateEncoding) {
      this.roundEncoding.set(r.round, r.updateEncoding);
      for (const round of this.roundEncoding.keys()) if (round < r.round - 8) this.roundEncoding.delete(round);
    }
    if (r.status === 'assigned' && r.chunked) {
      this.roundChunked.set(r.round, r.chunked);
      for (const round of this.roundChunked.keys()) if (round < r.round - 8) this.roundChunked.delete(round);
    }
    return r;
  }

  /** Checks in until assigned, sleeping as long as the server asks between attempts. */
  async waitForAssignment(
    options: { signal?: AbortSignal | undefined; maxWaitMs?: number; onWait?: (seconds: number, reason: string) => void } = {},
  ): Promise<Assignment> {
    const deadline = options.maxWaitMs === undefined ? Infinity : Date.now() + options.maxWaitMs;
    for (;;) {
      const r = await this.checkIn(options);
      if (r.status === 'assigned') return r;
      const waitMs = r.retryAfterSeconds * 1000;
      if (Date.now() + waitMs > deadline) throw new FedgeError('no_assignment', `no assignment within ${options.maxWaitMs} ms (last answer: ${r.reason})`);
      options.onWait?.(r.retryAfterSeconds, r.reason);
      await sleep(waitMs, options.signal);
    }
  }

  /** The task's topology, tensor layout and training plan (fetched once). */
  getTaskModel(): Promise<TaskModel> {
    this.task ??= this.http
      .json<TaskModel & Record<string, unknown>>({ method: 'GET', path: this.base, retry: true })
      .then((t) => ({ modelTopology: t.modelTopology, tensors: t.tensors, plan: t.plan }))
      .catch((e) => {
        this.task = null;
        throw e;
      });
    return this.task;
  }

  /** A version's manifest (`current` for the latest). */
  getManifest(version: number | 'current', options: { signal?: AbortSignal | undefined } = {}): Promise<ModelManifest> {
    return this.http.json<ModelManifest>({ method: 'GET', path: `${this.base}/models/${version}`, retry: true, signal: options.signal });
  }

  /**
   * A version's weights, checked against the manifest's SHA-256. Versions are immutable, so the
   * last `cacheVersions` are kept and never downloaded twice.
   */
  getWeights(version: number, options: { signal?: AbortSignal | undefined } = {}): Promise<ModelWeights> {
    const hit = this.cache.get(version);
    if (hit) {
      this.cache.delete(version);
      this.cache.set(version, hit); // most recently used last
      return hit;
    }
    const p = this.fetchWeights(version, options.signal);
    this.cache.set(version, p);
    p.catch(() => this.cache.delete(version));
    while (this.cache.size > this.cacheVersions) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }

  /**
   * A blob, resumed with a byte range (`Range: bytes=N-`, answered 206) when the connection breaks
   * off mid-body, up to maxRetries times: a large version on a flaky phone link is not downloaded
   * again from the start. The content hash check after it covers the pieces together.
   */
  private async download(path: string, signal: AbortSignal | undefined): Promise<Uint8Array<ArrayBuffer>> {
    const parts: Uint8Array<ArrayBuffer>[] = [];
    let received = 0;
    for (let attempt = 0; ; attempt++) {
      const res = await this.http.request({ method: 'GET', path, retry: true, signal, ...(received > 0 ? { headers: { range: `bytes=${received}-` } } : {}) });
      if (received > 0 && res.status !== 206) {
        parts.length = 0; // the server sent it whole after all: start over
        received = 0;
      }
      try {
        if (res.body) {
          const reader = (res.body as ReadableStream<Uint8Array<ArrayBuffer>>).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parts.push(value);
            received += value.byteLength;
          }
        }
        break;
      } catch (e) {
        if (signal?.aborted || attempt >= this.http.options.maxRetries) throw e;
        this.http.options.logger?.warn?.(`fedge: GET ${path} broke off after ${received} bytes (${(e as Error).message}); resuming from there`);
      }
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(received);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }

  private async fetchWeights(version: number, signal: AbortSignal | undefined): Promise<ModelWeights> {
    // Manifest and weights in parallel: one round trip instead of two.
    const [manifest, bytes] = await Promise.all([this.getManifest(version, { signal }), this.download(`${this.base}/models/${version}/weights`, signal)]);
    this.http.options.onTraffic?.(0, bytes.byteLength);
    const subtle = globalThis.crypto?.subtle;
    if (!subtle)
      throw new FedgeError(
        'missing_platform_api',
        'crypto.subtle is needed to verify downloaded weights: use a secure context (https or localhost) or, in React Native, a Web Crypto polyfill',
      );
    const digest = new Uint8Array(await subtle.digest('SHA-256', bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
    if (hex !== manifest.contentHash)
      throw new FedgeError('content_hash_mismatch', `weights of version ${version} do not match their content hash ${manifest.contentHash}`);
    const { tensors } = decodeTensors(bytes);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    const ordered = manifest.tensors.map((spec) => {
      const t = byName.get(spec.name);
      if (!t) throw new FedgeError('tensor_mismatch', `weights of version ${version} lack tensor "${spec.name}"`);
      return t;
    });
    return { manifest, flat: concatTensors(ordered) };
  }

  /**
   * A tfjs IO handler that loads a version the TensorFlow.js way (model.json + weights.bin,
   * compiled with the task's training config), with this client's token.
   *
   * @example
   * const model = await tf.loadLayersModel(client.modelHandler('current'));
   */
  modelHandler(version: number | 'current'): tf.io.IOHandler {
    return versionLoadHandler((path) => this.http.request({ method: 'GET', path, retry: true }), this.taskId, version);
  }

  /** The model of a version as a `tf.LayersModel` (the caller disposes it). */
  async downloadModel(version: number | 'current' = 'current', options: { signal?: AbortSignal | undefined } = {}): Promise<tf.LayersModel> {
    const v = version === 'current' ? (await this.getManifest('current', options)).version : version;
    const [task, weights] = await Promise.all([this.getTaskModel(), this.getWeights(v, options)]);
    return buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
  }

  /**
   * Submits Δ for an assigned round. The body is encoded once, so every retry sends the same
   * bytes and the server counts it once. Throws `LateUpdateError` if the round already ended.
   */
  async submitUpdate(args: SubmitArgs): Promise<UpdateAck> {
    return (await this.submitPrivately(args)).ack;
  }

  /** `submitUpdate`, with what a DP task's clipping and noise did to the update. */
  private async submitPrivately(args: SubmitArgs): Promise<{ ack: UpdateAck; privacy: UpdatePrivacy | null }> {
    const chunked = args.chunked ?? this.roundChunked.get(args.round);
    if (chunked) {
      // Large models take no DP (the task could not be created with it): Δ goes as it is, in chunks.
      const encoding = args.encoding ?? this.roundEncoding.get(args.round) ?? 'float32';
      const ack = await this.chunks.submit({ ...args, encoding, layout: chunked });
      return { ack, privacy: null };
    }
    const { manifest } = await this.getWeights(args.baseVersion, args.signal ? { signal: args.signal } : {});
    const metadata: Record<string, string> = { [UPDATE_META.baseVersion]: String(args.baseVersion), [UPDATE_META.numExamples]: String(args.numExamples) };
    const dp = args.privacy ?? this.roundPrivacy.get(args.round);
    const sent = dp ? privatizeUpdate(args.delta, dp) : null;
    // Under DP the local metrics stay on the device: the noise does not cover them.
    if (!dp && args.metrics && Object.keys(args.metrics).length > 0) metadata[UPDATE_META.metrics] = JSON.stringify(args.metrics);
    const encoding = args.encoding ?? this.roundEncoding.get(args.round) ?? 'float32';
    const { tensors } = encodeUpdate(manifest.tensors, sent?.delta ?? args.delta, encoding);
    const body = encodeRawTensors(tensors, { ...metadata, ...sent?.metadata });
    const ack = await this.http.json<UpdateAck>({ method: 'PUT', path: `${this.base}/rounds/${args.round}/update`, body, retry: true, signal: args.signal });
    return { ack, privacy: sent?.report ?? null };
  }

  /**
   * Federated evaluation: evaluates a version on the app's local held-out data and reports only
   * the example count and the metrics (loss, accuracy), which the server averages per version.
   */
  async evaluate(
    version: number | 'current',
    data: { xs: tf.Tensor; ys: tf.Tensor },
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<{ version: number; numExamples: number; metrics: Record<string, number> }> {
    const v = version === 'current' ? (await this.getManifest('current', options)).version : version;
    const [task, weights] = await Promise.all([this.getTaskModel(), this.getWeights(v, options)]);
    const model = await buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
    let report: { numExamples: number; metrics: Record<string, number> };
    try {
      report = await evaluateLocally(model, data, task.plan);
    } finally {
      model.dispose();
    }
    await this.http.json({ method: 'PUT', path: `${this.base}/models/${v}/evaluation`, json: report, retry: true, signal: options.signal });
    return { version: v, ...report };
  }

  /**
   * One whole participation: wait for an assignment, download its base version (or reuse the
   * cached one), train on `data` with the task's plan, submit Δ. Raw data never leaves the device:
   * only Δ, the example count and the final local metrics are sent.
   */
  async participate(data: TrainingData, options: ParticipateOptions = {}): Promise<ParticipationResult> {
    const { signal, onStep } = options;
    onStep?.('checking_in');
    const assignment = await this.waitForAssignment({
      ...(signal ? { signal } : {}),
      ...(options.maxWaitMs !== undefined ? { maxWaitMs: options.maxWaitMs } : {}),
      onWait: (seconds, reason) => onStep?.('waiting', { seconds, reason }),
    });
    // Secure aggregation: the key phases run while the model trains (they have their own, shorter deadlines).
    const secure = assignment.secureAggregation
      ? new SecureRound(this.http, this.base, this.clientId, this.taskId, assignment.round, assignment.secureAggregation)
      : null;
    const keyPhases = secure?.keyPhases(signal);
    keyPhases?.catch(() => {}); // awaited below; this keeps an early failure from being unhandled meanwhile
    onStep?.('downloading', { version: assignment.baseVersion });
    const [task, weights] = await Promise.all([this.getTaskModel(), this.getWeights(assignment.baseVersion, signal ? { signal } : {})]);
    onStep?.('training', { round: assignment.round });
    const model = await buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
    let trained: TrainResult;
    try {
      trained = await trainLocally(model, weights.flat, data, assignment.plan, options);
    } finally {
      model.dispose();
    }
    const { delta, ...train } = trained;
    onStep?.('submitting', { round: assignment.round, numExamples: train.numExamples });
    try {
      if (secure) {
        await keyPhases;
        // DP composes. Local: the update is clipped and noised on the device, then masked. Central:
        // it is clipped (to S less the quantization margin, so the quantized update stays within S)
        // and enters the sum with weight 1; the aggregator noises the unmasked sum.
        const p = assignment.privacy;
        const central = p?.mode === 'central';
        const clip = central ? { ...p, clipNorm: quantizedClipNorm(p.clipNorm, delta.length, assignment.secureAggregation!.fractionBits) } : p;
        const sent = clip ? privatizeUpdate(delta, clip) : null;
        const { ack, report } = await secure.submit(sent?.delta ?? delta, train.numExamples, signal, { equalWeights: central });
        return { status: 'accepted', ack, train, assignment, privacy: sent?.report ?? null, secureAggregation: report };
      }
      const { ack, privacy } = await this.submitPrivately({
        round: assignment.round,
        baseVersion: assignment.baseVersion,
        delta,
        numExamples: train.numExamples,
        metrics: train.metrics,
        privacy: assignment.privacy,
        ...(signal ? { signal } : {}),
      });
      return { status: 'accepted', ack, train, assignment, privacy, secureAggregation: null };
    } catch (e) {
      if (e instanceof RoundAbandonedError) return { status: 'abandoned', assignment, train };
      if (e instanceof LateUpdateError) return { status: 'late', assignment, train };
      throw e;
    }
  }
}
