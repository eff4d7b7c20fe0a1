/**
 * @module JSON shapes of the fedge HTTP API and the metadata keys of update messages,
 * shared by the aggregator (which validates them with zod) and the client SDK.
 */

import type { UpdateEncoding } from './encoding.ts';

/** `__metadata__` keys of an update message (all values are strings, as safetensors requires). */
export const UPDATE_META = {
  /** The model version the client trained from (decimal). */
  baseVersion: 'fedge.base_version',
  /** How many local examples the update was trained on (decimal, positive). */
  numExamples: 'fedge.num_examples',
  /** Optional JSON object of finite local metrics, e.g. `{"loss":0.31,"accuracy":0.9}`. */
  metrics: 'fedge.metrics',
  /** DP tasks with adaptive clipping and client-side clipping: `1` if the update's norm was ≤ the round's clip norm before clipping, else `0`. */
  unclipped: 'fedge.unclipped',
  /** A chunk of a chunked update (chunked.ts): its index, from 0 (decimal). */
  chunk: 'fedge.chunk',
} as const;

/**
 * Tensor names a task accepts: 1–256 letters, digits and `_ . : / -` (tfjs names weights
 * `<layer>/<weight>`, e.g. `dense_1/kernel`). Bounded so the update size cap stays exact.
 */
export const TENSOR_NAME_PATTERN = /^[A-Za-z0-9_.:/-]{1,256}$/;

/** Metric names: a letter, then up to 63 letters, digits and `_ . : / -` (so never `__proto__`). */
export const METRIC_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.:/-]{0,63}$/;

/** At most this many metrics per report. */
export const MAX_METRICS = 32;

/** `__metadata__` keys of a published model version's weights blob. */
export const MODEL_META = {
  task: 'fedge.task',
  version: 'fedge.version',
} as const;

/**
 * The local training plan a task sends to its clients.
 *
 * @example
 * const { plan } = await client.waitForAssignment();
 * console.log(`${plan.epochs} epoch(s) of ${plan.optimizer} at ${plan.learningRate}, batches of ${plan.batchSize}`);
 */
export interface TrainingPlan {
  epochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  /** The local loss, by its tfjs name. */
  loss: 'categoricalCrossentropy' | 'sparseCategoricalCrossentropy' | 'binaryCrossentropy' | 'meanSquaredError';
  /** FedProx μ: when > 0 the local loss gains μ/2·‖w − w_global‖². */
  proximalMu: number;
}

/**
 * How a secure-aggregation task's clients quantize their updates (the assignment's
 * `secureAggregation`): each coordinate clipped to ±clipRange, weighted by numExamples / maxExamples,
 * scaled by 2^fractionBits, taken modulo 2³².
 *
 * @example
 * const { clipRange, fractionBits, maxExamples } = assignment.secureAggregation!;
 */
export interface ClientSecAgg {
  clipRange: number;
  fractionBits: number;
  /** W: the weight folded into a quantized update is numExamples / W. */
  maxExamples: number;
  /** The deadline of each key phase, s. */
  phaseSeconds: number;
}

/**
 * What a differentially private task asks of the client for one round: clip the update to
 * `clipNorm` (exactly: `clipToNorm` of `protocol/dp.ts`) and, under local DP, add Gaussian noise of
 * σ = `noiseMultiplier` × `clipNorm` to it on the device, before it is sent.
 *
 * @example
 * const assignment = await client.waitForAssignment();
 * if (assignment.privacy) console.log(`clip to ${assignment.privacy.clipNorm}`, assignment.privacy.mode === 'local' ? `, noise z = ${assignment.privacy.noiseMultiplier}` : '');
 */
export interface ClientPrivacy {
  /** `central`: the server adds the noise to the sum (the client only clips); `local`: the client adds it. */
  mode: 'central' | 'local';
  clipNorm: number;
  /** Local DP: the noise multiplier z of the device's noise; 0 under central DP. */
  noiseMultiplier: number;
  /** The δ of the task's (ε, δ) guarantee. */
  delta: number;
  /** Adaptive clipping: send `fedge.unclipped` (whether the norm was ≤ `clipNorm` before clipping). */
  reportUnclipped: boolean;
}

/**
 * The privacy a version's release spent, with everything needed to check it (its manifest's
 * `privacy`; null for versions made without differential privacy).
 *
 * @example
 * const m = await client.getManifest('current');
 * if (m.privacy) console.log(`ε = ${m.privacy.epsilon.toFixed(2)} at δ = ${m.privacy.delta} after ${m.privacy.rounds} DP round(s)`);
 */
export interface VersionPrivacy {
  mode: 'central' | 'local';
  /** The accountant ε was computed with. */
  accountant: string;
  /** ε at `delta` spent by every release up to and including this version's. */
  epsilon: number;
  delta: number;
  /** z the accountant composes (with adaptive clipping: the update's and the count's noise together). */
  noiseMultiplier: number;
  /** S this version's updates were clipped to. */
  clipNorm: number;
  /** q of the Poisson client sampling (1 under local DP). */
  samplingRate: number;
  /** Releases under DP so far, this one included. */
  rounds: number;
  /** Where updates were clipped: the server, the client (central DP), or on the device with noise (local DP). */
  clipping: 'server' | 'client' | 'local';
  /** Local DP: ε at `delta` of one client's update in one round. */
  epsilonPerRound?: number | undefined;
  /** Adaptive clipping: its parameters, the update's own noise multiplier, and the clip norm this release moved to. */
  adaptiveClipping?: { targetQuantile: number; learningRate: number; countNoise: number; updateNoiseMultiplier: number; nextClipNorm: number } | undefined;
  /** The task's budget (ε at `delta`), or null. */
  epsilonBudget: number | null;
}

/**
 * How a task takes its updates in chunks, for models too large for one request (the assignment's
 * `chunked`; chunked.ts). The SDK's `submitUpdate` follows it by itself.
 *
 * @example
 * const a = await client.waitForAssignment();
 * if (a.chunked) console.log(`Δ goes in ${a.chunked.chunks} chunks of ${a.chunked.chunkParams} parameters`);
 */
export interface ChunkedUpload {
  /** Parameters per chunk (the last one holds the rest). */
  chunkParams: number;
  /** Chunks of one update. */
  chunks: number;
}

/**
 * The answer to a check-in: an assignment to the open round, or when to come back and why.
 *
 * @example
 * const r = await client.checkIn();
 * if (r.status === 'assigned') console.log(`round ${r.round}, from version ${r.baseVersion}`);
 * else console.log(`come back in ${r.retryAfterSeconds} s (${r.reason})`);
 */
export type CheckInResponse =
  | {
      status: 'assigned';
      taskId: string;
      round: number;
      baseVersion: number;
      /** Submit before this: ISO 8601 (UTC), like every time of the API. */
      deadlineAt: string;
      plan: TrainingPlan;
      /** What a differentially private task asks of this update on the device; absent when nothing (no DP, or the server clips). */
      privacy?: ClientPrivacy | undefined;
      /** Present when the task runs secure aggregation: how to quantize the update before masking it. */
      secureAggregation?: ClientSecAgg | undefined;
      /** Present when the task takes compressed updates (float16, int8): encode Δ this way. Absent: float32. */
      updateEncoding?: UpdateEncoding | undefined;
      /** Present for models too large for one request (chunked.ts): send the update in these chunks, then commit it. */
      chunked?: ChunkedUpload | undefined;
    }
  | {
      status: 'retry_later';
      taskId: string;
      retryAfterSeconds: number;
      /** `not_sampled`: a DP task's Poisson sampling left this client out of this round (check in for the next). */
      reason: 'round_full' | 'round_closing' | 'already_submitted' | 'task_paused' | 'not_sampled';
    };

/**
 * The server's acknowledgement of an accepted update: once it arrives, the update is durable and counted once.
 *
 * @example
 * const ack = await client.submitUpdate({ round, baseVersion, delta, numExamples });
 * console.log(`#${ack.seq} in round ${ack.round}`);
 */
export interface UpdateAck {
  taskId: string;
  round: number;
  clientId: string;
  /** Order in which the round accepted it (1-based). */
  seq: number;
  numExamples: number;
  /** SHA-256 (hex) of the accepted body: a retry with these exact bytes returns this same ack. */
  bodySha256: string;
  /** When it was accepted: ISO 8601 (UTC), like every time of the API. */
  acceptedAt: string;
}

/**
 * One tensor of a task's model: its name (`<layer>/<weight>`), shape and dtype.
 *
 * @example
 * const { tensors } = await client.getTaskModel();
 * for (const t of tensors) console.log(t.name, t.shape); // e.g. dense_1/kernel [4, 8]
 */
export interface TensorManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
}

/**
 * A published model version: its lineage, content hash, tensor layout, participants and metrics.
 *
 * @example
 * const manifest = await client.getManifest('current');
 * console.log(`version ${manifest.version} from round ${manifest.round}: ${manifest.participants} client(s)`, manifest.metrics);
 */
export interface ModelManifest {
  taskId: string;
  version: number;
  parentVersion: number | null;
  round: number | null;
  contentHash: string;
  byteLength: number;
  tensors: TensorManifestEntry[];
  participants: number;
  numExamples: number;
  metrics: Record<string, number> | null;
  /** The strategy that produced this version; null for version 0. */
  strategy: { name: string; params: Record<string, number | string> } | null;
  /** The privacy spent up to this version, under differential privacy; null otherwise. */
  privacy: VersionPrivacy | null;
  /** The operator's own held-out evaluation, if recorded. */
  serverMetrics: Record<string, number> | null;
  /** Clients' evaluations on their local data, example-weighted; null until one reports. */
  federatedEvaluation: { clients: number; numExamples: number; metrics: Record<string, number> } | null;
  createdAt: string;
  weightsUrl: string;
}
