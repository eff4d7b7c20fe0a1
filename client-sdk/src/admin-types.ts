/**
 * @module What the operator's calls return (FedgeAdmin): task summaries, enrollment keys and identity providers.
 */
import type { ChunkedUpload } from './protocol/chunked.ts';
import type { UpdateEncoding } from './protocol/encoding.ts';
import type { TensorManifestEntry, TrainingPlan } from './protocol/messages.ts';

/**
 * A line of the task list (`FedgeAdmin.listTasks`).
 *
 * @example
 * for (const t of await admin.listTasks()) console.log(t.id, t.name, t.status, t.currentVersion);
 */
export interface TaskSummary {
  id: string;
  name: string;
  status: 'active' | 'paused' | 'stopped';
  numParams: number;
  currentVersion: number;
  createdAt: string;
}

/**
 * A task's open (or closing) round as `getTask` shows it live; times in ISO 8601 (UTC).
 *
 * @example
 * const { currentRound: r } = await admin.getTask(taskId);
 * if (r) console.log(`round ${r.round}: ${r.accepted} accepted, deadline ${r.deadlineAt ?? 'not started'}`);
 */
export interface LiveRound {
  round: number;
  status: 'open' | 'closing' | 'closed' | 'abandoned';
  baseVersion: number;
  openedAt: string;
  /** When the round closes by its deadline (ms); null until a first client is assigned (the deadline clock starts then). */
  deadlineAt: string | null;
  assigned: number;
  accepted: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
}

/**
 * A task's differential privacy: central DP-FedAvg (McMahan et al. 2018; Poisson-sampled clients,
 * clipped equal-weight updates, Gaussian noise on the sum, fixed or adaptive clipping) or local DP
 * (each device clips and noises its own update). Defaults in brackets; see the README's
 * "Differential privacy" section.
 *
 * @example
 * await admin.createTask(model, {
 *   name: 'keyboard',
 *   rounds: { clientsPerRound: 100, minClients: 50, deadlineSeconds: 300 },
 *   privacy: { mode: 'central', noiseMultiplier: 1.1, clipNorm: 0.5, samplingRate: 0.01, epsilonBudget: 8 },
 * });
 */
export type PrivacyOptions =
  | {
      mode: 'central';
      /** z: noise σ = z × the clip norm. */
      noiseMultiplier: number;
      /** S (with adaptive clipping, its start). */
      clipNorm: number;
      /** q: the probability each checking-in client is taken into a round (Poisson sampling). */
      samplingRate: number;
      /** Where updates are clipped ['server']; 'client': the SDK clips, the server refuses updates above S. */
      clipping?: 'server' | 'client';
      /** Andrew et al. 2021: targetQuantile [0.5], learningRate [0.2], countNoise [clientsPerRound / 20]. */
      adaptiveClipping?: { targetQuantile?: number; learningRate?: number; countNoise?: number };
      /** δ [1e-5]. */
      delta?: number;
      /** The task finishes before a round that would take ε above this. */
      epsilonBudget?: number;
    }
  | { mode: 'local'; noiseMultiplier: number; clipNorm: number; delta?: number; epsilonBudget?: number };

/**
 * A task's secure aggregation (SecAgg+): the aggregator learns only each round's sum. Defaults in
 * brackets; see the README's "Secure aggregation" section.
 *
 * @example
 * await admin.createTask(model, {
 *   name: 'keyboard',
 *   rounds: { clientsPerRound: 100, overSelection: 1.3, minClients: 60 },
 *   secureAggregation: { clipRange: 0.5 },
 * });
 */
export interface SecureAggregationOptions {
  /** c: each coordinate of Δ is clipped to [−c, c] before it is quantized [1]. */
  clipRange?: number;
  /** k: neighbours per client [min(n − 1, 2⌈log₂ n⌉ + 2), even]. */
  neighbours?: number;
  /** t: shares that rebuild a secret [⌊k/2⌋ + 1]. */
  threshold?: number;
  /** Deadline of each key phase, s [30]. */
  phaseSeconds?: number;
}

/**
 * A task as `FedgeAdmin.getTask` shows it: its settings (with the server's defaults filled in) and
 * its live round.
 *
 * @example
 * const task = await admin.getTask(taskId);
 * console.log(task.status, task.currentVersion, task.rounds.clientsPerRound, task.strategy.name);
 */
export interface Task extends TaskSummary {
  tensors: TensorManifestEntry[];
  rounds: { clientsPerRound: number; minClients: number; deadlineSeconds: number; overSelection: number; maxExamplesPerClient: number };
  plan: TrainingPlan;
  strategy: { name: string; [param: string]: number | string };
  /** The differential privacy the task runs under, defaults filled in; null: none. */
  privacy: PrivacyOptions | null;
  /** What it has spent: DP releases so far, ε at `privacy.delta`, the next clip norm, whether the budget is spent (the task is `finished`). */
  privacySpent: { rounds: number; epsilon: number; clipNorm: number; exhausted: boolean } | null;
  /** The secure aggregation the task runs, defaults filled in; null: none. */
  secureAggregation: (Required<Omit<SecureAggregationOptions, 'neighbours' | 'threshold'>> & Pick<SecureAggregationOptions, 'neighbours' | 'threshold'>) | null;
  /** How clients encode their updates (model versions stay float32). */
  updateEncoding: UpdateEncoding;
  /** Aggregator shards a round is spread over (1: the master alone). */
  shards: number;
  /** A model split into parameter ranges: how its updates go in chunks (the SDK does it by itself); null: whole. */
  chunked: ChunkedUpload | null;
  maxUpdateBytes: number;
  maxClients: number;
  currentRound: LiveRound | null;
  modelTopology: Record<string, unknown>;
}

/**
 * A publishable enrollment key of a task (`key` only when it is created: shown once).
 *
 * @example
 * const { key } = await admin.createEnrollmentKey(taskId, { label: 'android app', maxClients: 50_000 });
 * // ship `key` inside the app: FedgeClient.enroll({ baseUrl, taskId, enrollmentKey: key })
 */
export interface EnrollmentKey {
  id: string;
  taskId: string;
  label: string | null;
  status: 'active' | 'expired' | 'revoked';
  maxClients: number;
  enrolled: number;
  clientTokenTtlSeconds: number | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  key?: string;
}

/**
 * An identity provider a task trusts: devices enroll with its ID tokens (one user, one client).
 *
 * @example
 * await admin.addIdentityProvider(taskId, {
 *   issuer: 'https://securetoken.google.com/my-project',
 *   audience: 'my-project',
 *   jwksUri: 'https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com',
 * });
 */
export interface IdentityProvider {
  id: string;
  taskId: string;
  issuer: string;
  audience: string;
  jwksUri: string;
  label: string | null;
  status: 'active' | 'revoked';
  clientTokenTtlSeconds: number | null;
  createdAt: string;
  revokedAt: string | null;
}
