/**
 * @module JSON shapes of the fedge HTTP API and the metadata keys of update messages,
 * shared by the aggregator (which validates them with zod) and the client SDK.
 */

/** `__metadata__` keys of an update message (all values are strings, as safetensors requires). */
export const UPDATE_META = {
  /** The model version the client trained from (decimal). */
  baseVersion: 'fedge.base_version',
  /** How many local examples the update was trained on (decimal, positive). */
  numExamples: 'fedge.num_examples',
  /** Optional JSON object of finite local metrics, e.g. `{"loss":0.31,"accuracy":0.9}`. */
  metrics: 'fedge.metrics',
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
    }
  | { status: 'retry_later'; taskId: string; retryAfterSeconds: number; reason: 'round_full' | 'round_closing' | 'already_submitted' | 'task_paused' };

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
  /** The operator's own held-out evaluation, if recorded. */
  serverMetrics: Record<string, number> | null;
  /** Clients' evaluations on their local data, example-weighted; null until one reports. */
  federatedEvaluation: { clients: number; numExamples: number; metrics: Record<string, number> } | null;
  createdAt: string;
  weightsUrl: string;
}
